"""The pipeline's stages, one function each: typed inputs in, a typed (JSON-able) output out.
:class:`~embedops.app.pipeline.Pipeline` chains them and caches each output by its key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from embedops.app.indexes import ready_index
from embedops.app.pairs import generate_pairs, mine_pairs
from embedops.app.pipeline.config import PipelineConfig
from embedops.checksums import sha256_file
from embedops.errors import EmbedopsError
from embedops.guards import run_guards
from embedops.guards.shadow import ShadowReport, run_shadow
from embedops.index import IndexSettings, IndexStatus
from embedops.registry import Registry, Searcher
from embedops.trainer.pairs import TrainingPair, import_beir, read_pairs, write_pairs
from embedops.trainer.train import train


@dataclass(frozen=True)
class ModelOut:
    ref: str


@dataclass(frozen=True)
class IndexOut:
    index_id: str
    table_version: int | None = None


@dataclass(frozen=True)
class PairsOut:
    file: str
    sha256: str
    pairs: int = 0
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MinedOut:
    file: str
    sha256: str
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedOut:
    ref: str
    alpha: float | None
    metrics: dict[str, Any]


@dataclass(frozen=True)
class GuardsOut:
    verdict: str
    report_id: str
    html: str | None
    gates: list[dict[str, Any]]
    domain: dict[str, Any]
    general: list[dict[str, Any]]


Progress = Callable[[int, "int | None"], None]  # (done, total) of one stage


def model_exists(registry: Registry, ref: str) -> bool:
    try:
        registry.models.get(ref)
        return True
    except EmbedopsError:
        return False


def index_ready(registry: Registry, index_id: str) -> bool:
    try:
        return registry.indexes.get(index_id).status is IndexStatus.READY
    except EmbedopsError:
        return False


def register_base(registry: Registry, cfg: PipelineConfig) -> ModelOut:
    return ModelOut(registry.models.register(cfg.base.name, cfg.base.model, notes="pipeline base").ref)


def baseline_settings(registry: Registry, cfg: PipelineConfig, base_ref: str) -> IndexSettings:
    """``[index]`` as the base model can honour it: a truncation (``dims``) only when the base was
    trained for that many dimensions; otherwise it serves at its full dimension, as it would without
    embedops (cut, it would lose quality silently and flatter the candidate the guards compare)."""
    trained = [int(d) for d in (registry.models.get(base_ref).params or {}).get("matryoshka_dims") or []]
    return cfg.index if cfg.index.dims is None or cfg.index.dims in trained else replace(cfg.index, dims=None)


def promote_baseline(registry: Registry, cfg: PipelineConfig, base_ref: str, progress: Progress | None = None) -> IndexOut:
    """The first index behind the alias: the unmodified base model's (:func:`baseline_settings`), an
    explicit, audited override."""
    idx = ready_index(registry, base_ref, cfg.corpus.name, on_progress=progress,
                      settings=baseline_settings(registry, cfg, base_ref))
    registry.promote(idx.index_id, cfg.alias, expect=None, override=True,
                     reason=f"pipeline: first {cfg.alias} index, the unmodified base model {base_ref}")
    return IndexOut(idx.index_id, idx.table_version)


def make_pairs(registry: Registry, cfg: PipelineConfig, base_ref: str, work: Path) -> PairsOut:
    """Labelled pairs (BEIR qrels or a pairs file) and/or generated ones, filtered by a round trip
    through the base model's index."""
    pairs: list[TrainingPair] = []
    counts: dict[str, Any] = {}
    if cfg.labelled:
        if cfg.labelled.beir:
            got = import_beir(cfg.labelled.beir, cfg.labelled.split)
        else:
            got = read_pairs(cfg.labelled.file, corpus=registry.corpora.texts(cfg.corpus.name))
        pairs += got
        counts["labelled"] = len(got)
    if cfg.generated:
        spec = cfg.generated
        result = generate_pairs(registry, cfg.corpus.name, spec, round_trip=base_ref if spec.round_trip_top_k else None)
        pairs += result.kept
        counts["generated"] = result.report.to_dict()
    path = write_pairs(work / "pairs.jsonl", pairs)
    return PairsOut(str(path), sha256_file(path), len(pairs), counts)


def mine(registry: Registry, cfg: PipelineConfig, pairs: PairsOut, base_ref: str, work: Path,
         progress: Progress | None = None) -> MinedOut:
    mined, report = mine_pairs(registry, read_pairs(pairs.file), base_ref, cfg.corpus.name, cfg.mine, on_progress=progress)
    path = write_pairs(work / "mined.jsonl", mined)
    return MinedOut(str(path), sha256_file(path), report.to_dict())


def fine_tune(registry: Registry, cfg: PipelineConfig, mined: MinedOut, base_ref: str,
              progress: Progress | None = None) -> TrainedOut:
    on_log = (lambda point: progress(point["step"], point.get("total_steps"))) if progress else None
    general_pairs = read_pairs(cfg.general_pairs) if cfg.general_pairs else None
    result = train(registry, base_ref, read_pairs(mined.file), name=cfg.base.name, general_eval=cfg.general_eval,
                   general_pairs=general_pairs, config=cfg.train, pair_hashes=[mined.sha256], on_log=on_log)
    return TrainedOut(result.model.ref, result.alpha, {k: result.metrics[k] for k in ("before", "after")})


def build_candidate(registry: Registry, cfg: PipelineConfig, model_ref: str, progress: Progress | None = None) -> IndexOut:
    idx = ready_index(registry, model_ref, cfg.corpus.name, on_progress=progress, settings=cfg.index)
    return IndexOut(idx.index_id, idx.table_version)


def guard(registry: Registry, cfg: PipelineConfig, index: IndexOut, work: Path) -> GuardsOut:
    r = run_guards(registry, index.index_id, gold=cfg.guards.gold, general=cfg.guards.general, policy=cfg.policy,
                   alias=cfg.alias, html_dir=work / "report")
    domain = next(g for g in r.gates if g.name == "domain").evidence
    return GuardsOut(
        verdict=r.verdict, report_id=r.stored.report_id, html=str(r.html),
        gates=[{k: g.to_dict()[k] for k in ("name", "status", "value", "threshold", "reason")} for g in r.gates],
        domain={k: v for k, v in domain.items() if k in ("production", "candidate", "mean_lift", "ci_low", "ci_high")},
        general=next(g for g in r.gates if g.name == "forgetting").evidence.get("benchmarks", []),
    )


def shadow(registry: Registry, cfg: PipelineConfig, index: IndexOut, queries: dict[str, str],
           qrels: dict[str, dict[str, int]]) -> ShadowReport:
    rep = run_shadow(Searcher(registry), index.index_id, queries, qrels=qrels, k=10, alias=cfg.alias)
    rep.movers = rep.movers[:5]
    return rep
