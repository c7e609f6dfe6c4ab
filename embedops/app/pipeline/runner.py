"""Content-addressed stage runs: a stage's output is kept under ``<store>/pipeline/<stage>/<key>.json``,
its key hashing the stage's settings and the keys or checksums of its inputs, so a rerun after a
crash or a config change redoes only the stages whose key changed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from embedops.checksums import sha256_json

T = TypeVar("T")
OnStage = Callable[[str, str], None]
OnProgress = Callable[[str, int, "int | None"], None]  # (stage, done, total or None)


def stage_key(*parts: Any) -> str:
    """The key of a stage run: sha256 (16 hex digits) of its settings and inputs as JSON."""
    return sha256_json(parts, default=str)[:16]


@dataclass
class StageResult:
    name: str
    key: str
    cached: bool
    seconds: float
    outputs: dict[str, Any]


@dataclass
class PipelineReport:
    stages: list[StageResult] = field(default_factory=list)
    promoted: bool = False
    verdict: str | None = None
    candidate_index: str | None = None
    production_before: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "verdict": self.verdict, "candidate_index": self.candidate_index,
                "production_before": self.production_before, "stages": [asdict(s) for s in self.stages]}

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)


class StageRunner:
    """Runs each stage once per key under ``root`` and records it in ``report``."""

    def __init__(self, root: Path, report: PipelineReport, on_stage: OnStage):
        self.root = Path(root)
        self.report = report
        self.on_stage = on_stage

    def run(self, name: str, key: str, produce: Callable[[Path], T], output: type[T],
            valid: Callable[[T], bool] = lambda out: True) -> T:
        """``output`` read back from a finished run with this key (when still ``valid``), else
        ``produce(work_dir)``, written atomically. ``output`` is a dataclass type."""
        done = self.root / name / f"{key}.json"
        if done.is_file():
            out = output(**json.loads(done.read_text()))
            if valid(out):
                self.on_stage(name, "cached")
                self.report.stages.append(StageResult(name, key, True, 0.0, asdict(out)))
                return out
        self.on_stage(name, "running")
        start = time.perf_counter()
        work = self.root / name / key
        work.mkdir(parents=True, exist_ok=True)
        out = produce(work)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(out), indent=2, sort_keys=True, default=str))
        tmp.replace(done)
        seconds = time.perf_counter() - start
        self.report.stages.append(StageResult(name, key, False, seconds, asdict(out)))
        self.on_stage(name, f"done in {seconds:.1f}s")
        return out

    def record(self, name: str, key: str, seconds: float, outputs: dict[str, Any]) -> None:
        """A stage that is not cached (it is idempotent by itself): just report it."""
        self.report.stages.append(StageResult(name, key, False, seconds, outputs))
