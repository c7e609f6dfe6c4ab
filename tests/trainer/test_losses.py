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
