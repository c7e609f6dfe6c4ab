"""One training run of a recipe (one learning rate and top-up rule) with the sentence-transformers trainer.

:func:`run_trial` trains ``model`` on :class:`~embedops.trainer.dataset.TrainingData` with the given
loss and learning rate for up to ``epochs`` epochs; with a dev scorer it watches the dev score
(:class:`~embedops.trainer.devwatch.DevWatch`: early stopping, a time budget, a probe's pause) and
leaves the model holding the weights of its best dev score. Checkpoints go to ``folder``; a trial
started again with the same folder resumes from its last checkpoint.

>>> t = run_trial(model, data, loss, config, lr=5e-5, epochs=3, folder=run / "lr-5e-05",
...               dev=scorer, deadline=time.monotonic() + 600)           # doctest: +SKIP
>>> t.best["domain_ndcg@10"], t.stopped                                   # doctest: +SKIP
(86.8, 'early stopping: 2 evaluations without a better dev score')
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from embedops.trainer.batching import batch_sampler_for
from embedops.trainer.config import TrainConfig
from embedops.trainer.dataset import TrainingData
from embedops.trainer.devwatch import DevWatch


@dataclass
class Trial:
    """What one run of the trainer did: its learning rate, steps, loss curve, dev points, the best
    dev point (None without a dev scorer) and why it stopped."""

    lr: float
    epochs: int
    steps: int = 0
    curve: list[dict] = field(default_factory=list)
    dev: list[dict] = field(default_factory=list)
    best: dict | None = None
    stopped: str = "max epochs"
    seconds: float = 0.0
    trained_in: str = "no"  # what autocast used: "no", "bf16" or "fp16"
    resumed: bool = False
    top_up: str = "random"  # the negatives rule: the top-up rule, and ", margin M" where mined pairs were filtered again (TrainingData.rule)

    def to_dict(self) -> dict:
        return {"lr": self.lr, "top_up": self.top_up, "epochs": self.epochs, "steps": self.steps, "dev": self.dev,
                "best": self.best, "stopped": self.stopped, "seconds": round(self.seconds, 1)}


@dataclass
class Precision:
    """The trainer's mixed-precision switches for a run (see :func:`embedops.trainer.fit.mixed_precision`)."""

    bf16: bool
    fp16: bool


def _warmup(ratio: float) -> dict:
    """The warm-up share as the installed transformers takes it: ``warmup_steps`` as a float below 1
    on 5.x (``warmup_ratio`` is deprecated there), ``warmup_ratio`` on 4.x (whose steps are whole)."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"warmup_steps": float(ratio)}
    return {"warmup_ratio": ratio}


def use_mixed_precision(choice: str) -> Callable[[], None]:
    """Make this run's mixed precision ("no", "bf16" or "fp16") the one accelerate uses; returns what
    puts the process back as it was.

    transformers writes the precision of a run into ``ACCELERATE_MIXED_PRECISION`` and accelerate
    keeps it in a process-wide state, so without this, every fp32 run after one bf16 run in the same
    process (a notebook, a server, a test session) would silently train in bf16: emulated, and many
    times slower, on a CPU without AVX512-BF16."""
    from accelerate.state import AcceleratorState

    previous = os.environ.get("ACCELERATE_MIXED_PRECISION")
    AcceleratorState._reset_state()
    os.environ["ACCELERATE_MIXED_PRECISION"] = choice

    def restore() -> None:
        AcceleratorState._reset_state()
        if previous is None:
            os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
        else:
            os.environ["ACCELERATE_MIXED_PRECISION"] = previous

    return restore


def run_trial(model, data: TrainingData, loss, config: TrainConfig, *, lr: float, epochs: int, folder: Path,
              precision: Precision, dev: Callable[[object], float] | None = None, deadline: float = math.inf,
              pause_after_epochs: int | None = None, clock: Callable[[], float] = time.monotonic,
              world: int = 1, on_log: Callable[[dict], None] | None = None) -> Trial:
    """Train ``model`` in place (see the module's docstring). ``dev`` scores a model (nDCG@10 x 100);
    ``pause_after_epochs`` ends the run there with a checkpoint that a later call continues."""
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trial = Trial(lr=lr, epochs=epochs, top_up=data.rule)

    class Curve(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                point = {"step": state.global_step, "epoch": round(state.epoch or 0, 3), "loss": float(logs["loss"]),
                         "lr": lr}
                trial.curve.append(point)
                if on_log:  # with the run's total, for a progress bar's ETA (the curve keeps the point only)
                    on_log(point | {"total_steps": state.max_steps})

    cuda = torch.cuda.is_available()
    steps_per_epoch = max(1, math.ceil(len(data.dataset) / (config.batch_size * world)))
    watch = None
    if dev is not None:
        watch = DevWatch(dev, eval_steps=math.ceil(steps_per_epoch / config.evals_per_epoch), patience=config.patience,
                         deadline=deadline, clock=clock, folder=folder,
                         pause_step=steps_per_epoch * pause_after_epochs if pause_after_epochs else None)
    restore_precision = use_mixed_precision("bf16" if precision.bf16 else "fp16" if precision.fp16 else "no")
    started = clock()
    try:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(folder), num_train_epochs=epochs, max_steps=config.max_steps,
            per_device_train_batch_size=config.batch_size, learning_rate=lr, **_warmup(config.warmup_ratio),
            seed=config.seed, data_seed=config.seed, batch_sampler=batch_sampler_for(data.known),
            save_strategy="steps" if config.save_steps else "epoch", save_steps=config.save_steps or 500,
            save_total_limit=1, logging_steps=max(1, steps_per_epoch // 10),
            eval_strategy="no", report_to=[], bf16=precision.bf16, fp16=precision.fp16,
            use_cpu=not cuda, dataloader_drop_last=False, disable_tqdm=True,
            ddp_backend=("nccl" if cuda else "gloo") if world > 1 else None,
        )
        # The model card writer draws a "Computing widget examples" tqdm bar on stderr while the trainer
        # is set up (tqdm reads TQDM_DISABLE only when it is imported, so the variable cannot silence it).
        with contextlib.redirect_stderr(io.StringIO()):
            trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data.dataset, loss=loss,
                                                 callbacks=[Curve()] + ([watch] if watch else []))
        for noisy in (PrinterCallback, ProgressCallback):  # progress goes through on_log, stdout stays clean
            trainer.remove_callback(noisy)
        trial.resumed = any(folder.glob("checkpoint-*"))
        trial.trained_in = trainer.accelerator.mixed_precision
        trainer.train(resume_from_checkpoint=True if trial.resumed else None)
        trial.steps = trainer.state.global_step
    finally:
        restore_precision()
    trial.seconds = clock() - started
    if watch is not None:
        trial.dev, trial.best, trial.stopped = watch.points, watch.best, watch.stopped or "max epochs"
        best = watch.best_weights()
        if best is not None:
            model.load_state_dict(best)
    return trial
