"""Training losses as plug-ins: one module per loss, registered by name, as sentence-transformers
keeps its losses.

A loss plug-in is a function ``(model, setup) -> torch.nn.Module`` registered under a name; ``embedops
train --loss NAME`` and ``TrainConfig(loss=NAME)`` pick it. :class:`LossSetup` carries what a loss may
need besides the model: the run's settings, whether to gather embeddings across processes, and a way
to load the base model as a guide. The built-in ones register themselves when this package is
imported: ``mnrl``, ``cached-mnrl`` and ``cached-gist``.

>>> from embedops.trainer.losses import register_loss, registered_losses
>>> @register_loss("my-mnrl")
... def my_mnrl(model, setup):
...     from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
...     return MultipleNegativesRankingLoss(model, scale=30.0)
>>> "my-mnrl" in registered_losses()
True
>>> unregister_loss("my-mnrl")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from embedops.errors import UsageError


@dataclass(frozen=True)
class LossSetup:
    """What a loss plug-in gets besides the model being trained."""

    mini_batch_size: int  # texts embedded at a time by the GradCache losses
    gather_across_devices: bool  # in-batch negatives from every process of a distributed run
    load_guide: Callable[[], Any]  # loads the base model (a frozen copy) for the guided losses


LossFactory = Callable[[Any, LossSetup], Any]
_LOSSES: dict[str, LossFactory] = {}


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    """Register ``factory`` as the loss called ``name`` (a decorator). A name already taken raises."""

    def add(factory: LossFactory) -> LossFactory:
        if name in _LOSSES or name == "auto":
            raise UsageError(f"a loss called {name!r} is already registered")
        _LOSSES[name] = factory
        return factory

    return add


def unregister_loss(name: str) -> None:
    """Remove a registered loss (a plug-in's tests use it to leave the registry as they found it)."""
    _LOSSES.pop(name, None)


def registered_losses() -> list[str]:
    """The names ``--loss`` accepts besides ``auto``, built-in ones first."""
    _load_builtins()
    return list(_LOSSES)


def make_loss(name: str, model, setup: LossSetup):
    """The loss ``name`` for ``model``; an unknown name raises a :class:`UsageError` listing the known."""
    _load_builtins()
    if name not in _LOSSES:
        raise UsageError(f"unknown loss {name!r}: use auto, {', '.join(_LOSSES)}")
    return _LOSSES[name](model, setup)


def _load_builtins() -> None:
    from embedops.trainer.losses import mnrl, cached_mnrl, cached_gist  # noqa: F401, I001  (they register themselves, in this order)
