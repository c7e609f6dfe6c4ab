"""Guard thresholds, read from a policy file (``embedops.toml``, section ``[guards]``).

Defaults (every field may be overridden in the file)::

    [guards]
    metric = "ndcg@10"        # domain metric the paired test runs on (ndcg@10, recall@10, mrr@10)
    k = 10                    # recall@k cut-off
    tolerance = 1.0           # fail if the 95% CI lower bound of the mean per-query lift < -tolerance (points)
    min_lift = 0.0            # fail if the mean lift (points) is below this
    confidence = 0.95
    bootstrap_resamples = 10000
    max_drop = 1.0            # forgetting: max drop of nDCG@10 or Spearman x100 vs the lineage's base
    parity_min_cosine = 0.999 # fp32; fp16/int8 use parity_min_cosine_reduced
    parity_min_cosine_reduced = 0.99
    ann_min_recall = 0.9      # integrity: ANN recall@10 vs exact, when an ANN index exists
    latency_max_ratio = 0     # 0 = latency gate off; else candidate p95 <= ratio x production p95
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from embedops.errors import InputError, InputProblem

DEFAULT_POLICY_FILE = "embedops.toml"


@dataclass(frozen=True)
class Policy:
    metric: str = "ndcg@10"
    k: int = 10
    tolerance: float = 1.0
    min_lift: float = 0.0
    confidence: float = 0.95
    bootstrap_resamples: int = 10000
    max_drop: float = 1.0
    parity_min_cosine: float = 0.999
    parity_min_cosine_reduced: float = 0.99
    ann_min_recall: float = 0.9
    latency_max_ratio: float = 0.0

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return asdict(self)


def load_policy(path: Path | str | None = None) -> Policy:
    """The policy in ``path`` (default ./embedops.toml when it exists), else the defaults."""
    path = Path(path) if path else Path(DEFAULT_POLICY_FILE)
    if not path.is_file():
        if str(path) != DEFAULT_POLICY_FILE:
            raise InputError(InputProblem(str(path), None, None, "no such policy file"))
        return Policy()
    try:
        data = tomllib.loads(path.read_text("utf-8")).get("guards", {})
    except tomllib.TOMLDecodeError as exc:
        raise InputError(InputProblem(str(path), getattr(exc, "lineno", None), None, f"invalid TOML: {exc}")) from None
    known = {f.name: f.type for f in fields(Policy)}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise InputError(InputProblem(str(path), None, f"guards.{unknown[0]}", f"unknown setting; known: {', '.join(known)}"))
    if data.get("metric", "ndcg@10") not in ("ndcg@10", "mrr@10") and not str(data.get("metric")).startswith("recall@"):
        raise InputError(InputProblem(str(path), None, "guards.metric", "use ndcg@10, mrr@10 or recall@K"))
    return Policy(**data)
