"""Losses are plug-ins: registered by name, chosen with ``loss=``, recorded with the version."""

import pytest

from embedops.errors import UsageError
from embedops.trainer.losses import make_loss, register_loss, registered_losses, unregister_loss
from embedops.trainer.train import TrainConfig, train
from test_mining_and_training import TOPICS


def _pairs():
    from embedops.trainer.pairs import TrainingPair

    return [TrainingPair(f"{w} {k}", f"{k.upper()} {v}", k) for k, v in TOPICS.items() for w in ("about", "fix")]


def test_the_built_in_losses_are_registered_and_an_unknown_name_lists_them():
    assert registered_losses()[:3] == ["mnrl", "cached-mnrl", "cached-gist"]
    with pytest.raises(UsageError, match="unknown loss 'triplett': use auto, mnrl, cached-mnrl, cached-gist"):
        TrainConfig(loss="triplett")
    with pytest.raises(UsageError, match="already registered"):
        register_loss("mnrl")(lambda model, setup: None)


def test_a_loss_registered_from_outside_trains_and_is_recorded(reg):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    made = []

    @register_loss("sharp-mnrl")
    def sharp(model, setup):
        made.append(setup.mini_batch_size)
        return MultipleNegativesRankingLoss(model, scale=50.0)

    try:
        result = train(reg, "tiny@1", _pairs(), config=TrainConfig(epochs=1, lr=1e-4, batch_size=4, loss="sharp-mnrl",
                                                                   eval_fraction=0.0, interpolate=None))
    finally:
        unregister_loss("sharp-mnrl")
    assert made == [16] and result.model.params["loss_used"] == "sharp-mnrl" and result.curve
    assert "sharp-mnrl" not in registered_losses()


def test_the_guided_loss_takes_the_base_model_as_its_guide(reg):
    from embedops.trainer.losses import LossSetup

    model = reg.models.load("tiny@1", device="cpu")
    guides = []
    loss = make_loss("cached-gist", model, LossSetup(8, False, lambda: guides.append(1) or reg.models.load("tiny@1", device="cpu")))
    assert guides == [1] and type(loss).__name__ == "CachedGISTEmbedLoss" and loss.guide is not model
    result = train(reg, "tiny@1", _pairs(), config=TrainConfig(epochs=1, lr=1e-4, batch_size=4, loss="cached-gist",
                                                               eval_fraction=0.0, interpolate=None))
    assert result.model.params["loss_used"] == "cached-gist" and all(c["loss"] == c["loss"] for c in result.curve)


def test_matryoshka_training_wraps_the_loss_and_the_version_records_its_dims(reg, monkeypatch):
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

    from embedops.trainer.losses import matryoshka as module

    wrapped = []
    real = module.matryoshka

    def spy(model, loss, dims):
        out = real(model, loss, dims)
        wrapped.append((type(out), type(loss).__name__, dims))
        return out

    monkeypatch.setattr("embedops.trainer.fit.matryoshka", spy)
    config = TrainConfig(epochs=1, lr=1e-4, batch_size=4, loss="mnrl", eval_fraction=0.0, interpolate=None,
                         matryoshka_dims=[32, 16, 8])
    result = train(reg, "tiny@1", _pairs(), config=config)
    assert wrapped == [(MatryoshkaLoss, "MultipleNegativesRankingLoss", (32, 16, 8))]
    assert list(result.model.params["matryoshka_dims"]) == [32, 16, 8]  # what lets an index be cut to them


@pytest.mark.parametrize("dims, message", [
    ([16, 32], "distinct positive dimensions, largest first"), ([32, 32], "distinct"), ([0], "positive"), ([], "none"),
])
def test_matryoshka_dims_out_of_order_or_not_positive_are_refused(dims, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(matryoshka_dims=dims)


def test_matryoshka_dims_above_the_models_own_are_refused_before_training(reg):
    with pytest.raises(UsageError, match="--matryoshka-dims 64 is more than the model's 32 dimensions"):
        train(reg, "tiny@1", _pairs(), config=TrainConfig(epochs=1, lr=1e-4, batch_size=4, eval_fraction=0.0,
                                                         interpolate=None, matryoshka_dims=[64, 16]))
