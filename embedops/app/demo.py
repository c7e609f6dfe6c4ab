"""``embedops demo``: the whole lifecycle, offline, on a fresh store.

Creates a demo store, writes the demo domain (see :mod:`embedops.app.demo_domain`), registers the
bundled all-MiniLM-L6-v2 and promotes its index, then runs the pipeline: pairs (the organisation's
own staff questions plus extractive pseudo-queries), positive-aware mining, fine-tuning with
WiSE-FT interpolation, the green index, guards, shadow, promotion; then shows a rollback and a
re-promote. ``--domain DIR --general DIR|TSV`` runs the same on real BEIR-format data.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from embedops.app.demo_domain import write_demo_domain, write_general_sts
from embedops.app.generators import GeneratorSpec
from embedops.app.pairs import MineSettings
from embedops.app.pipeline import Pipeline, PipelineConfig, PipelineReport
from embedops.app.pipeline.config import CorpusSection, GuardsSection, LabelledPairs
from embedops.errors import UsageError
from embedops.registry import Registry
from embedops.store import Store
from embedops.trainer.train import TrainConfig

DEMO_MARKER = ".embedops-demo"


@dataclass
class DemoSummary:
    store: Path
    report: PipelineReport
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    general: list[dict[str, Any]] = field(default_factory=list)
    rollback_ms: float = 0.0
    repromote_ms: float = 0.0
    general_note: str = ""


def prepare_store(path: Path) -> Path:
    """A fresh demo store at ``path``: refuses to wipe anything that is not an earlier demo store."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        if not (path / DEMO_MARKER).is_file():
            raise UsageError(f"{path} exists and is not an embedops demo store; choose another --store for the demo")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    Store.open(str(path))
    (path / DEMO_MARKER).write_text("created by 'embedops demo'; safe to delete\n")
    return path


def demo_config(store: Path, domain: Path | None, general: list[Path]) -> tuple[PipelineConfig, str]:
    # Sized for "under 5 minutes on 2 CPU cores": one epoch, 1 mined negative, 4 interpolation weights.
    # Plain MNRL: loss "auto" sizes a step by the model's 256-token limit and would take GradCache (a
    # second forward pass, the demo's training twice as long); the demo's notes are under 80 tokens,
    # so a step is under 10k tokens and its peak RSS stays near 3.4 GB (docs/BENCHMARKS.md).
    train = TrainConfig(epochs=1, batch_size=32, lr=5e-5, interpolate="auto", max_general_drop=1.0,
                        eval_fraction=0.1, alphas=(1.0, 0.8, 0.6, 0.4), loss="mnrl")
    mine = MineSettings(negatives=1, margin=0.95, range_min=0, range_max=50)
    if domain is None:
        dom = write_demo_domain(store / "demo-domain")
        note = ("general check: 24 hand-written sentence pairs (a smoke test of everyday English, not a benchmark); "
                "for a real one run with --general ../shared/data/general-stsb/sts-test.tsv")
        return PipelineConfig(
            corpus=CorpusSection("demo-runbooks", dom.root), labelled=LabelledPairs(file=str(dom.pairs)),
            generated=GeneratorSpec(generator="extractive", per_doc=1, round_trip_top_k=10),
            mine=mine, train=train, general_eval=dom.general,
            guards=GuardsSection(dom.root, [*general] or [dom.general]), source="embedops demo",
        ), note
    domain = Path(domain)
    if not (domain / "corpus.jsonl").is_file():
        raise UsageError(f"--domain {domain}: not a BEIR directory (no corpus.jsonl)")
    has_train = (domain / "qrels" / "train.tsv").is_file()
    labelled = LabelledPairs(beir=str(domain), split="train") if has_train else None
    generated = None if has_train else GeneratorSpec(generator="extractive", per_doc=1, limit=2000, round_trip_top_k=10)
    if general:
        note = f"general check: {', '.join(str(g) for g in general)}"
    else:  # the forgetting gate is required: without --general, the demo's smoke test is the general set
        general = [write_general_sts(store / "general-sts.tsv")]
        note = ("no --general given: general ability checked only on the demo's 24 hand-written sentence pairs "
                "(a smoke test, not a benchmark); pass --general ../shared/data/general-stsb/sts-test.tsv")
    sts = next((g for g in general if g.is_file()), None)
    return PipelineConfig(
        corpus=CorpusSection(domain.name.replace(".", "-")[:64], domain), labelled=labelled, generated=generated,
        mine=mine, train=train if sts else replace(train, interpolate=None), general_eval=sts,
        guards=GuardsSection(domain, list(general)), source="embedops demo --domain",
    ), note


def run_demo(store: Path, *, domain: Path | None = None, general: list[Path] | None = None,
             on_stage: Callable[[str, str], None] | None = None,
             on_progress: Callable[[str, int, int | None], None] | None = None) -> DemoSummary:
    store = prepare_store(store)
    config, note = demo_config(store, domain, [Path(g) for g in general or []])
    reg = Registry(Store.open(str(store)))
    report = Pipeline(reg, config, on_stage=on_stage, on_progress=on_progress).run()
    summary = DemoSummary(store, report, general_note=note)
    guards = report.stage("guards")
    if guards:
        summary.before = guards.outputs["domain"].get("production", {})
        summary.after = guards.outputs["domain"].get("candidate", {})
        summary.general = guards.outputs.get("general", [])
    if report.promoted:
        t = time.perf_counter()
        reg.rollback(config.alias, reason="demo: showing an O(1) rollback")
        summary.rollback_ms = 1000 * (time.perf_counter() - t)
        if on_stage:
            on_stage("rollback", f"{config.alias} -> {reg.aliases.current(config.alias)} in {summary.rollback_ms:.0f} ms")
        t = time.perf_counter()
        # the same guard report authorises it again: production is back where it was when the guards ran
        reg.promote(report.candidate_index, config.alias, policy=config.policy, expect=report.production_before,
                    reason="demo: re-promote after the rollback")
        summary.repromote_ms = 1000 * (time.perf_counter() - t)
        if on_stage:
            on_stage("re-promote", f"{config.alias} -> {report.candidate_index} in {summary.repromote_ms:.0f} ms")
    return summary
