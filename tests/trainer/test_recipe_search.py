"""The recipe chosen on dev: early stopping keeps the best dev weights, the learning rate comes from
a grid by probes, and a time budget (an injected clock, no sleeps) bounds the search."""

from types import SimpleNamespace

import pytest
import torch

from embedops.trainer.devwatch import DevWatch
from embedops.trainer.select import search_recipe
from embedops.trainer.trial import Trial
from embedops.trainer.train import TrainConfig


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _steps(watch: DevWatch, model: torch.nn.Module, *, max_steps: int, clock=None, tick=0.0):
    """Drive the callback as the trainer would: one step after another until it says stop. The
    model's weight is the step number, so the weights kept tell which step they came from."""
    state = SimpleNamespace(global_step=0, epoch=0.0, max_steps=max_steps)
    for step in range(1, max_steps + 1):
        with torch.no_grad():
            model.weight.fill_(step)
        state.global_step, state.epoch = step, step / 2
        if clock:
            clock.now += tick
        control = SimpleNamespace(should_training_stop=False, should_save=False)
        watch.on_step_end(None, state, control, model=model)
        if control.should_training_stop:
            return step, control
    return max_steps, control


def test_early_stopping_keeps_the_weights_of_the_best_dev_score(tmp_path):
    scores = iter([70.0, 75.0, 74.0, 73.0, 99.0])  # best at step 2; step 5's 99 is never reached
    watch = DevWatch(lambda m: next(scores), eval_steps=1, patience=2, deadline=float("inf"), clock=Clock(),
                     folder=tmp_path / "trial")
    model = torch.nn.Linear(1, 1, bias=False)
    stopped_at, _ = _steps(watch, model, max_steps=10)
    assert stopped_at == 4 and watch.stopped.startswith("early stopping: 2 evaluations")
    assert watch.best == {"step": 2, "epoch": 1.0, "domain_ndcg@10": 75.0}
    assert [p["domain_ndcg@10"] for p in watch.points] == [70.0, 75.0, 74.0, 73.0]
    assert watch.best_weights()["weight"].item() == 2.0  # the weights of step 2, not of the last step
    # a later process (a resumed run) finds what this one saw
    again = DevWatch(lambda m: 0.0, eval_steps=1, patience=2, deadline=float("inf"), clock=Clock(),
                     folder=tmp_path / "trial")
    assert again.best == watch.best and again.since_best == 2 and again.best_weights()["weight"].item() == 2.0


def test_the_time_budget_stops_a_run_scores_its_last_weights_and_saves_a_checkpoint(tmp_path):
    clock = Clock()
    scores = iter([70.0, 80.0, 60.0])
    watch = DevWatch(lambda m: next(scores), eval_steps=4, patience=2, deadline=100.0, clock=clock,
                     folder=tmp_path / "trial")
    stopped_at, control = _steps(watch, torch.nn.Linear(1, 1, bias=False), max_steps=50, clock=clock, tick=30.0)
    assert stopped_at == 4 and watch.stopped == "time budget" and control.should_save  # 4 x 30 s > 100 s
    assert [p["step"] for p in watch.points] == [4]  # the step it stopped at is scored, once


def test_a_probe_pauses_with_a_checkpoint_and_the_last_step_ends_at_max_epochs(tmp_path):
    scores = iter(range(100))
    watch = DevWatch(lambda m: float(next(scores)), eval_steps=3, patience=2, deadline=float("inf"), clock=Clock(),
                     folder=tmp_path / "probe", pause_step=6)
    stopped_at, control = _steps(watch, torch.nn.Linear(1, 1, bias=False), max_steps=12)
    assert (stopped_at, watch.stopped, control.should_save) == (6, "probe", True)
    last = DevWatch(lambda m: float(next(scores)), eval_steps=5, patience=0, deadline=float("inf"), clock=Clock(),
                    folder=tmp_path / "full")
    stopped_at, _ = _steps(last, torch.nn.Linear(1, 1, bias=False), max_steps=7)
    assert stopped_at == 7 and last.stopped == "max epochs" and [p["step"] for p in last.points] == [5, 7]


def _fake_runs(clock: Clock, best_by_lr: dict[float, float], seconds: float = 10.0):
    """A stand-in for one trainer run per call: it takes ``seconds`` on the clock, sets the model's
    weight to its lr's score, and reports that score as its best dev point."""
    model = torch.nn.Linear(1, 1, bias=False)
    calls = []

    def run(lr, epochs, deadline, pause, top_up="random"):
        calls.append((lr, pause, deadline))
        clock.now += seconds
        with torch.no_grad():
            model.weight.fill_(best_by_lr[lr] + (pause is None))  # going on improves by one point
        score = best_by_lr[lr] + (pause is None)
        return Trial(lr=lr, epochs=epochs, steps=5, dev=[{"step": 5, "domain_ndcg@10": score}],
                     best={"step": 5, "epoch": 1.0, "domain_ndcg@10": score},
                     stopped="probe" if pause else "early stopping: 2 evaluations without a better dev score",
                     seconds=seconds)

    return model, run, calls


def test_the_search_probes_every_rate_then_goes_on_with_the_best():
    clock = Clock()
    model, run, calls = _fake_runs(clock, {2e-5: 80.0, 5e-5: 85.0, 1e-4: 82.0})
    search = search_recipe(model, run, lrs=(2e-5, 5e-5, 1e-4), epochs=3, budget_s=400, clock=clock)
    assert [(lr, pause) for lr, pause, _ in calls] == [(2e-5, 1), (5e-5, 1), (1e-4, 1), (5e-5, None)]
    # each probe had an equal share of what was left, one share kept for going on
    assert calls[0][2] == pytest.approx(100.0) and calls[1][2] == pytest.approx(10 + 390 / 3)
    assert search.lr == 5e-5 and search.best["domain_ndcg@10"] == 86.0 and model.weight.item() == 86.0
    assert [t.lr for t in search.trials] == [2e-5, 5e-5, 1e-4]  # the continued trial replaced its probe
    assert search.trials[1].seconds == 20.0 and "lr 5e-05 stopped by early stopping" in search.reason


def test_a_budget_spent_on_probes_skips_the_rest():
    clock = Clock()
    model, run, calls = _fake_runs(clock, {2e-5: 80.0, 5e-5: 85.0, 1e-4: 82.0}, seconds=60.0)
    search = search_recipe(model, run, lrs=(2e-5, 5e-5, 1e-4), epochs=3, budget_s=100, clock=clock)
    assert [lr for lr, _, _ in calls] == [2e-5, 5e-5]  # nothing left for 1e-4 nor for going on
    assert search.lr == 5e-5 and model.weight.item() == 85.0


@pytest.mark.slow
def test_training_registers_the_best_dev_checkpoint_and_says_what_dev_chose(reg, tmp_path):
    from test_mining_and_training import TOPICS, make_dev_beir
    from embedops.trainer.evaluators import labelled_dev_evaluator, score
    from embedops.trainer.fit import fit
    from embedops.trainer.pairs import TrainingPair

    texts = {k: f"{k.upper()} {v}" for k, v in TOPICS.items()}
    pairs = [TrainingPair(f"{w} {k}", texts[k], k) for k in TOPICS for w in ("about", "fix", "help")]
    dev = make_dev_beir(tmp_path / "dev")
    config = TrainConfig(lr=5e-3, batch_size=4, patience=0, interpolate=None, domain_dev=str(dev),
                         eval_fraction=0.0)
    result = fit(reg, "tiny@1", pairs, config=config)
    trial = result.metrics["recipe_search"]["trials"][0]
    points = [p["domain_ndcg@10"] for p in trial["dev"]]
    assert len(points) >= 6 and trial["stopped"] == "max epochs"  # twice an epoch, and the last step
    chosen = result.model.params["chosen"]
    assert chosen["dev_ndcg@10"] == max(points) and chosen["step"] == trial["best"]["step"]
    # the registered weights are the best dev checkpoint's: scored again, they give its score
    again = score(labelled_dev_evaluator(dev, "dev", seed=0), reg.models.load(result.model.ref, device="cpu"))
    assert again == pytest.approx(max(points), abs=1e-6)
    assert result.metrics["after"]["domain_ndcg@10"] == pytest.approx(max(points), abs=1e-6)
