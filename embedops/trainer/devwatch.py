"""Early stopping on the user's own dev queries, under a time budget: a trainer callback.

:class:`DevWatch` scores the dev set (nDCG@10 of held-out or labelled dev queries) every
``eval_steps`` steps and at the last step, keeps the weights of the best score so far, and stops the
run when ``patience`` evaluations in a row found nothing better (early stopping, Prechelt 1998,
"Early Stopping - But When?"), when the trial's time is up (``deadline`` on an injected ``clock``), or
at ``pause_step`` (the end of a probe: a checkpoint is saved so the run can be continued). What it
has seen is written to ``folder`` at each improvement, so a resumed run goes on from it.

>>> watch = DevWatch(lambda model: 80.0, eval_steps=10, patience=2, deadline=float("inf"),
...                  clock=time.monotonic, folder=Path("run/lr-5e-05"))    # doctest: +SKIP
>>> trainer = SentenceTransformerTrainer(..., callbacks=[watch])          # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

BEST_WEIGHTS = "best-on-dev.pt"
HISTORY = "dev.json"


class DevWatch(TrainerCallback):
    """Scores ``evaluate(model)`` as training goes; see the module's docstring."""

    def __init__(self, evaluate: Callable[[object], float], *, eval_steps: int, patience: int, deadline: float,
                 clock: Callable[[], float], folder: Path, pause_step: int | None = None,
                 min_delta: float = 0.0):
        self.evaluate, self.eval_steps, self.patience = evaluate, max(1, eval_steps), patience
        self.deadline, self.clock, self.folder = deadline, clock, folder
        self.pause_step, self.min_delta = pause_step, min_delta
        self.points: list[dict] = []  # {"step", "epoch", "domain_ndcg@10"}
        self.best: dict | None = None
        self.best_state: dict | None = None
        self.since_best = 0
        self.stopped: str | None = None
        self._load()

    # what a resumed run has seen already
    def _load(self) -> None:
        path = self.folder / HISTORY
        if path.is_file():
            seen = json.loads(path.read_text("utf-8"))
            self.points, self.best, self.since_best = seen["points"], seen["best"], seen["since_best"]

    def _save(self, state_dict: dict | None) -> None:
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        if state_dict is not None:
            tmp = self.folder / f".{BEST_WEIGHTS}.tmp"
            torch.save(state_dict, tmp)
            tmp.replace(self.folder / BEST_WEIGHTS)
        tmp = self.folder / f".{HISTORY}.tmp"
        tmp.write_text(json.dumps({"points": self.points, "best": self.best, "since_best": self.since_best}), "utf-8")
        tmp.replace(self.folder / HISTORY)

    def best_weights(self) -> dict | None:
        """The weights of the best dev score (kept in memory, or written by an earlier process)."""
        import torch

        if self.best_state is not None:
            return self.best_state
        path = self.folder / BEST_WEIGHTS
        return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() and self.best else None

    def record(self, step: int, epoch: float, value: float, model) -> None:
        """One dev score: kept as the best (with the model's weights) when it beats the best by
        ``min_delta``; otherwise one more evaluation without progress."""
        point = {"step": step, "epoch": round(epoch, 3), "domain_ndcg@10": value}
        self.points.append(point)
        if self.best is None or value > self.best["domain_ndcg@10"] + self.min_delta:
            self.best, self.since_best = point, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self._save(self.best_state)
        else:
            self.since_best += 1
            self._save(None)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        last = step >= state.max_steps
        if step % self.eval_steps == 0 or last or step == self.pause_step:
            self.record(step, state.epoch or 0.0, self.evaluate(model), model)
            if self.patience and self.since_best >= self.patience:
                self.stopped = f"early stopping: {self.since_best} evaluations without a better dev score"
        if self.stopped is None and self.clock() >= self.deadline:
            if not self.points or self.points[-1]["step"] != step:
                self.record(step, state.epoch or 0.0, self.evaluate(model), model)  # the last weights count too
            self.stopped = "time budget"
            control.should_save = True  # the run can be continued from here
        if self.stopped is None and self.pause_step is not None and step >= self.pause_step and not last:
            self.stopped = "probe"
            control.should_save = True  # the run can be continued from here
        if self.stopped is None and last:
            self.stopped = "max epochs"
        if self.stopped is not None:
            control.should_training_stop = True
        return control
