"""The pipeline as a list of stages over one registry (see :mod:`embedops.app.pipeline`)."""

from __future__ import annotations

import time
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

from embedops.app.pipeline import stages
from embedops.app.pipeline.config import PipelineConfig
from embedops.app.pipeline.runner import OnProgress, OnStage, PipelineReport, StageRunner, stage_key
from embedops.beir import benchmark_digest, gold_digest, read_gold
from embedops.checksums import sha256_file
from embedops.guards.shadow import ShadowReport
from embedops.registry import Registry


class Pipeline:
    """Runs the stages in order over one registry; ``on_stage(name, status)`` reports each stage,
    ``on_progress(name, done, total)`` the steps of the long ones (baseline and candidate index
    builds, mining, training).

    >>> report = Pipeline(Registry(store), PipelineConfig.from_toml("pipeline.toml")).run()   # doctest: +SKIP
    >>> report.verdict, report.promoted                                                       # doctest: +SKIP
    ('pass', True)
    """

    def __init__(self, registry: Registry, config: PipelineConfig, on_stage: OnStage | None = None,
                 on_progress: OnProgress | None = None):
        self.registry = registry
        self.config = config
        self.on_stage = on_stage or (lambda name, status: None)
        self.on_progress = on_progress
        self.report = PipelineReport()
        self.stages = StageRunner(registry.store.root / "pipeline", self.report, self.on_stage)

    def run(self) -> PipelineReport:
        corpus_version = self.add_corpus()
        base = self.register_base()
        self.ensure_production(base)
        pairs = self.make_pairs(base, corpus_version)
        mined = self.mine(pairs, base, corpus_version)
        trained = self.train(mined, base)
        index = self.build_index(trained, corpus_version)
        if self.already_serves(index):
            return self.report
        guards = self.guard(index)
        self.shadow(index)
        self.promote(index, guards)
        return self.report

    def _progress(self, stage: str):
        """``on_progress`` bound to ``stage`` (None when nobody listens)."""
        if self.on_progress is None:
            return None
        return lambda done, total: self.on_progress(stage, done, total)

    # -- the stages, in order ---------------------------------------------------------------------

    def add_corpus(self) -> int:
        """Idempotent by itself (counts changes); keyed by the corpus table version it yields."""
        cfg, start = self.config, time.perf_counter()
        self.on_stage("corpus", "running")
        change = self.registry.corpora.add(cfg.corpus.name, cfg.corpus.path, replace=True)  # the config declares the corpus
        self.stages.record("corpus", str(change.version), time.perf_counter() - start, change.__dict__)
        return change.version

    def register_base(self) -> stages.ModelOut:
        base = self.config.base
        return self.stages.run("base", stage_key(base.model, base.name),
                               lambda work: stages.register_base(self.registry, self.config), stages.ModelOut,
                               valid=lambda out: stages.model_exists(self.registry, out.ref))

    def ensure_production(self, base: stages.ModelOut) -> None:
        cfg, reg = self.config, self.registry
        current = reg.aliases.get(cfg.alias)
        if current is None or current.value is None:
            self.stages.run("production", stage_key("baseline", reg.models.get(base.ref).digest, cfg.corpus.name, cfg.alias),
                            lambda work: stages.promote_baseline(reg, cfg, base.ref, self._progress("production")),
                            stages.IndexOut)
        self.report.production_before = reg.aliases.current(cfg.alias)

    def make_pairs(self, base: stages.ModelOut, corpus_version: int) -> stages.PairsOut:
        cfg = self.config
        labelled = asdict(cfg.labelled) if cfg.labelled else None
        source = sha256_file(cfg.labelled.source)[:16] if cfg.labelled else None
        key = stage_key(labelled, source, asdict(cfg.generated) if cfg.generated else None, corpus_version,
                        self._digest(base.ref))
        return self.stages.run("pairs", key, lambda work: stages.make_pairs(self.registry, cfg, base.ref, work),
                               stages.PairsOut, valid=lambda out: _file(out.file))

    def mine(self, pairs: stages.PairsOut, base: stages.ModelOut, corpus_version: int) -> stages.MinedOut:
        key = stage_key(pairs.sha256, asdict(self.config.mine), self._digest(base.ref), corpus_version)
        return self.stages.run("mine", key, lambda work: stages.mine(self.registry, self.config, pairs, base.ref, work,
                                                                self._progress("mine")),
                               stages.MinedOut, valid=lambda out: _file(out.file))

    def train(self, mined: stages.MinedOut, base: stages.ModelOut) -> stages.TrainedOut:
        cfg = self.config
        general_eval = sha256_file(cfg.general_eval)[:16] if cfg.general_eval else None
        general_pairs = sha256_file(cfg.general_pairs)[:16] if cfg.general_pairs else None
        key = stage_key(mined.sha256, asdict(cfg.train), self._digest(base.ref), general_eval,
                        *([general_pairs] if general_pairs else []))  # without: the key runs had before
        return self.stages.run("train", key, lambda work: stages.fine_tune(self.registry, cfg, mined, base.ref,
                                                                      self._progress("train")),
                               stages.TrainedOut, valid=lambda out: stages.model_exists(self.registry, out.ref))

    def build_index(self, trained: stages.TrainedOut, corpus_version: int) -> stages.IndexOut:
        key = stage_key(self._digest(trained.ref), self.config.corpus.name, corpus_version,
                        self.config.index.to_dict())
        index = self.stages.run("index", key, lambda work: stages.build_candidate(self.registry, self.config, trained.ref,
                                                                            self._progress("index")),
                                stages.IndexOut, valid=lambda out: stages.index_ready(self.registry, out.index_id))
        self.report.candidate_index = index.index_id
        return index

    def already_serves(self, index: stages.IndexOut) -> bool:
        """A rerun after this candidate was promoted: report what authorised it, skip guards and shadow."""
        alias = self.config.alias
        head = self.registry.aliases.get(alias)
        if head is None or head.value != index.index_id:
            return False
        self.report.verdict = "pass" if head.report_id else "override"
        self.report.promoted = True
        self.on_stage("promote", f"{alias} already serves {index.index_id} ("
                      + (f"guard report {head.report_id})" if head.report_id else "an override)"))
        return True

    def guard(self, index: stages.IndexOut) -> stages.GuardsOut:
        cfg = self.config
        key = stage_key(asdict(index), cfg.policy.hash, self._gold_digest, self._general_digests,
                        self.report.production_before)
        guards = self.stages.run("guards", key, lambda work: stages.guard(self.registry, cfg, index, work), stages.GuardsOut)
        self.report.verdict = guards.verdict
        return guards

    def shadow(self, index: stages.IndexOut) -> ShadowReport:
        queries, qrels, gold = read_gold(self.config.guards.gold)
        key = stage_key(asdict(index), gold, self.report.production_before)
        return self.stages.run("shadow", key, lambda work: stages.shadow(self.registry, self.config, index, queries, qrels),
                               ShadowReport)

    def promote(self, index: stages.IndexOut, guards: stages.GuardsOut) -> None:
        """Only a passing report promotes (and only with ``[promote] auto``); otherwise the alias stays."""
        cfg, reg = self.config, self.registry
        if guards.verdict != "pass" or not cfg.promote.auto:
            self.on_stage("promote", f"not promoted: verdict {guards.verdict}; {cfg.alias} untouched")
            return
        if reg.aliases.current(cfg.alias) != index.index_id:
            start = time.perf_counter()
            reg.promote(index.index_id, cfg.alias, policy=cfg.policy, expect=self.report.production_before,
                        reason=f"pipeline: guard report {guards.report_id} passed", gold_digest=self._gold_digest,
                        general_digests=self._general_digests)
            self.stages.record("promote", index.index_id, time.perf_counter() - start,
                               {"alias": cfg.alias, "index_id": index.index_id})
        self.report.promoted = True
        self.on_stage("promote", f"{cfg.alias} -> {index.index_id}")

    # -- helpers ------------------------------------------------------------------------------------

    def _digest(self, model_ref: str) -> str:
        return self.registry.models.get(model_ref).digest

    @cached_property
    def _gold_digest(self) -> str:
        return gold_digest(self.config.guards.gold)

    @cached_property
    def _general_digests(self) -> list[str]:
        """Hashed once a run (a general benchmark may be a whole BEIR directory)."""
        return [benchmark_digest(g) for g in self.config.guards.general]


def _file(path: str) -> bool:
    return Path(path).is_file()
