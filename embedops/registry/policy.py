"""The promotion policy: which gates must pass and their thresholds, read strictly from the
``[guards]`` section of ``embedops.toml`` (or inline in a pipeline config's ``[guards]``).

It lives in the registry because the registry enforces it at every alias switch: a guard report
authorises a promotion only under the policy (by hash) it was made with. Defaults::

    [guards]
    required_gates = ["domain", "slices", "forgetting", "onnx_parity", "index_integrity"]  # must run AND pass
    domain_floor = nan        # absolute domain metric (points) a first promotion must reach (no production
                              # to compare with); unset: a first promotion needs an override
    metric = "ndcg@10"        # domain metric the paired test runs on (ndcg@10, mrr@10, recall@K)
    k = 10                    # recall@k cut-off
    tolerance = 1.0           # fail if the CI lower bound of the mean per-query lift < -tolerance (points)
    min_lift = 0.0            # fail if the mean lift (points) is below this
    fine_tunes_must_lift = true  # a fine-tune (a model with a lineage parent) replacing another model must
                              # show a lift: the CI lower bound above 0, not only above -tolerance
    confidence = 0.95         # of the bootstrap interval, in (0, 1)
    bootstrap_resamples = 10000  # at least 100
    min_gold_queries = 50     # evidence: gold queries with a relevant document in both indexes (TREC's 50 topics)
    max_missing_qrels = 0.05  # evidence: share of relevant judgements that may name documents absent from an index
    slice_tolerance = 5.0     # slices: fail if a slice's corrected CI lower bound < -slice_tolerance (points)
    min_slice_queries = 20    # slices: smaller slices are listed, not judged
    max_slices = 8            # slices: derived by k-means when the gold set names none
    max_drop = 1.0            # forgetting: max drop of nDCG@10 or Spearman x100 vs production's model and the lineage's root
    min_sts_pairs = 20        # forgetting evidence: pairs an STS file must have
    min_general_queries = 20  # forgetting evidence: BEIR queries with a relevant document in its corpus
    parity_min_cosine = 0.999 # fp32; fp16/int8 use parity_min_cosine_reduced
    parity_min_cosine_reduced = 0.99
    ann_min_recall = 0.9      # integrity: ANN recall@10 vs exact search, measured at guard time
    ann_sample = 100          # integrity: queries the ANN recall is measured on
    latency_max_ratio = 0     # 0 = latency gate off; else candidate p95 <= ratio x production p95

(``domain_floor`` is unset by default; TOML has no null, so leave the key out to keep it unset. Why
the evidence minimums are what they are: docs/CONCEPTS.md, "Evidence".)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from embedops.checksums import sha256_json
from embedops.config import POLICY_FILE, TomlFile, boolean, read_policy_file, read_settings
from embedops.config import number_in as _in
from embedops.errors import UsageError

DEFAULT_POLICY_FILE = POLICY_FILE
GATES = ("domain", "slices", "forgetting", "onnx_parity", "index_integrity", "latency")
DEFAULT_REQUIRED = ("domain", "slices", "forgetting", "onnx_parity", "index_integrity")


def _metric(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if value in ("ndcg@10", "mrr@10"):
        return None
    if value.startswith("recall@") and value[7:].isdigit() and int(value[7:]) >= 1:
        return None
    return f"use ndcg@10, mrr@10 or recall@K (got {value!r})"


def _gates(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(g, str) for g in value):
        return f"must be a list of gate names from: {', '.join(GATES)}"
    unknown = [g for g in value if g not in GATES]
    if unknown:
        return f"unknown gate {unknown[0]!r}; gates: {', '.join(GATES)}"
    if len(set(value)) != len(value):
        return "names a gate twice"
    return None


def _floor(value: Any) -> str | None:
    return None if value is None else _in(0, 100)(value)


_CHECKS = {
    "required_gates": _gates,
    "domain_floor": _floor,
    "metric": _metric,
    "k": _in(1, 1000, integer=True),
    "tolerance": _in(0, 100),
    "min_lift": _in(-100, 100),
    "fine_tunes_must_lift": boolean,
    "confidence": _in(0, 1, lo_open=True, hi_open=True),
    "bootstrap_resamples": _in(100, 10_000_000, integer=True),
    "min_gold_queries": _in(2, 10_000_000, integer=True),
    "max_missing_qrels": _in(0, 1),
    "slice_tolerance": _in(0, 100),
    "min_slice_queries": _in(2, 10_000_000, integer=True),
    "max_slices": _in(2, 64, integer=True),
    "max_drop": _in(0, 100),
    "min_sts_pairs": _in(3, 10_000_000, integer=True),
    "min_general_queries": _in(2, 10_000_000, integer=True),
    "parity_min_cosine": _in(0, 1, lo_open=True),
    "parity_min_cosine_reduced": _in(0, 1, lo_open=True),
    "ann_min_recall": _in(0, 1),
    "ann_sample": _in(1, 100_000, integer=True),
    "latency_max_ratio": _in(0, 1000),
}


@dataclass(frozen=True)
class Policy:
    """Gates that must pass and their thresholds; every field is type- and range-checked.

    >>> Policy(min_lift=0.5).required_gates
    ('domain', 'slices', 'forgetting', 'onnx_parity', 'index_integrity')
    >>> Policy(confidence=7.0)
    Traceback (most recent call last):
    ...
    embedops.errors.UsageError: policy setting 'confidence' must be < 1 (got 7.0)
    """

    required_gates: tuple[str, ...] = DEFAULT_REQUIRED
    domain_floor: float | None = None
    metric: str = "ndcg@10"
    k: int = 10
    tolerance: float = 1.0
    min_lift: float = 0.0
    fine_tunes_must_lift: bool = True
    confidence: float = 0.95
    bootstrap_resamples: int = 10000
    min_gold_queries: int = 50
    max_missing_qrels: float = 0.05
    slice_tolerance: float = 5.0
    min_slice_queries: int = 20
    max_slices: int = 8
    max_drop: float = 1.0
    min_sts_pairs: int = 20
    min_general_queries: int = 20
    parity_min_cosine: float = 0.999
    parity_min_cosine_reduced: float = 0.99
    ann_min_recall: float = 0.9
    ann_sample: int = 100
    latency_max_ratio: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            problem = _CHECKS[f.name](getattr(self, f.name))
            if problem:
                raise UsageError(f"policy setting {f.name!r} {problem}")
        object.__setattr__(self, "required_gates", tuple(self.required_gates))

    @property
    def hash(self) -> str:
        """Identifies the policy in guard reports: a report authorises only under the same hash."""
        return sha256_json(asdict(self))[:16]

    def to_dict(self) -> dict:
        return asdict(self) | {"required_gates": list(self.required_gates)}

    @classmethod
    def from_section(cls, toml: TomlFile, section: str, table: dict[str, Any], *, base: "Policy | None" = None,
                     ignore: tuple[str, ...] = ()) -> "Policy":
        """A policy from ``table`` (read from ``[section]`` of ``toml``) on top of ``base``'s values.
        Keys in ``ignore`` belong to the caller (e.g. a pipeline's ``gold``); any other unknown key,
        wrong type or value out of range is an InputError naming file, line and ``section.key``."""
        values = read_settings(toml, section, table, {f.name: _CHECKS[f.name] for f in fields(cls)}, ignore=ignore)
        if "required_gates" in values:
            values["required_gates"] = tuple(values["required_gates"])
        start = (base or cls()).to_dict() | {"required_gates": (base or cls()).required_gates}
        return cls(**(start | values))


def load_policy(path: Path | str | None = None) -> Policy:
    """The policy in ``path`` (default ./embedops.toml when it exists), else the defaults.

    ``embedops.toml`` has the sections ``[guards]`` and ``[serve.rollback]`` (read by ``embedops serve``,
    see :mod:`embedops.app.server.rollback`); any other section, or any unknown key, is an error."""
    toml = read_policy_file(path)
    return Policy() if toml is None else Policy.from_section(toml, "guards", toml.section("guards"))
