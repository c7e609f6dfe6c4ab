"""Multi-device training (``embedops train --devices N``): distributed data parallel with torchrun.

:func:`launch` writes the training job (pairs, settings, store URI) to a folder and starts
``torch.distributed.run --standalone --nproc-per-node N -m embedops.trainer.distributed JOB``. Each
process runs :func:`embedops.trainer.fit.fit`, which sees ``WORLD_SIZE`` and lets the
sentence-transformers trainer (Hugging Face Trainer + accelerate) wrap the model in DDP: NCCL on
GPUs, gloo on CPUs. The MNRL losses gather embeddings across processes
(``gather_across_devices=True``), so every query is scored against the positives and hard negatives
of all N per-device batches: in-batch negatives grow with N. Rank 0 alone interpolates, evaluates and
registers the new version; its progress lines come back to the caller as JSON on stdout.

Example::

    result = launch(registry, "minilm@1", pairs, devices=2, config=TrainConfig(epochs=1))
    print(result.model.ref)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from embedops.errors import EmbedopsError
from embedops.registry import Registry
from embedops.store import Store
from embedops.trainer.config import TrainConfig, TrainResult
from embedops.trainer.fit import fit
from embedops.trainer.pairs import TrainingPair, read_pairs, write_pairs

LOG_PREFIX = "EMBEDOPS-LOG "
RESULT_FILE = "result.json"


class DistributedTrainingError(EmbedopsError):
    """A distributed training run failed in one of its processes."""


def launch(registry: Registry, base_ref: str, pairs: list[TrainingPair], *, devices: int, name: str | None = None,
           general_pairs: list[TrainingPair] | None = None, general_eval: Path | None = None, config=None,
           pair_hashes: list[str] | None = None, on_log: Callable[[dict], None] | None = None):
    """Run :func:`~embedops.trainer.fit.fit` on ``devices`` processes; returns rank 0's TrainResult."""
    config = config or TrainConfig()
    with tempfile.TemporaryDirectory(prefix="embedops-ddp-") as tmp:
        job = Path(tmp)
        write_pairs(job / "pairs.jsonl", pairs)
        if general_pairs:
            write_pairs(job / "general.jsonl", general_pairs)
        spec = {"store": registry.store.uri, "base": base_ref, "name": name, "config": asdict(config),
                "general": bool(general_pairs), "general_eval": str(general_eval) if general_eval else None,
                "pair_hashes": pair_hashes or []}
        (job / "job.json").write_text(json.dumps(spec), encoding="utf-8")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}",
               "-m", "embedops.trainer.distributed", str(job)]
        env = os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        tail: list[str] = []

        def drain_stderr():
            for line in proc.stderr:
                tail.append(line)
                del tail[:-40]

        reader = threading.Thread(target=drain_stderr, daemon=True)
        reader.start()
        for line in proc.stdout:
            if line.startswith(LOG_PREFIX) and on_log:
                on_log(json.loads(line[len(LOG_PREFIX):]))
        proc.wait()
        reader.join(5)
        result_file = job / RESULT_FILE
        if proc.returncode != 0 or not result_file.is_file():
            raise DistributedTrainingError(
                f"distributed training on {devices} processes failed (exit {proc.returncode}); last output:\n"
                + "".join(tail[-20:]))
        out = json.loads(result_file.read_text("utf-8"))
    return TrainResult(registry.models.get(out["ref"]), out["alpha"], out["metrics"], out["curve"])


def _worker(job: Path) -> None:
    spec = json.loads((job / "job.json").read_text("utf-8"))
    config = TrainConfig(**{k: tuple(v) if k in ("alphas", "lr_grid") else v for k, v in spec["config"].items()})
    registry = Registry(Store.open(spec["store"]))
    rank = int(os.environ.get("RANK", "0"))

    def log(point: dict) -> None:
        if rank == 0:
            print(LOG_PREFIX + json.dumps(point), flush=True)

    result = fit(registry, spec["base"], read_pairs(job / "pairs.jsonl"), name=spec["name"],
                   general_pairs=read_pairs(job / "general.jsonl") if spec["general"] else None,
                   general_eval=Path(spec["general_eval"]) if spec["general_eval"] else None,
                   config=config, pair_hashes=spec["pair_hashes"], on_log=log)
    if result is not None:  # rank 0
        tmp = job / f".{RESULT_FILE}.tmp"
        tmp.write_text(json.dumps({"ref": result.model.ref, "alpha": result.alpha, "metrics": result.metrics,
                                   "curve": result.curve}), encoding="utf-8")
        tmp.replace(job / RESULT_FILE)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
