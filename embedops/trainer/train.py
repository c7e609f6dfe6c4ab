"""Fine-tune a registered model on training pairs: in this process, or with ``config.devices > 1``
on that many processes (distributed data parallel, :mod:`embedops.trainer.distributed`).

The recipe (losses, replay, weight interpolation, checkpoints) is in :mod:`embedops.trainer.fit`.

>>> result = train(registry, "minilm@1", pairs, config=TrainConfig(epochs=1))     # doctest: +SKIP
>>> result.model.ref                                                            # doctest: +SKIP
'minilm@2'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from embedops.registry import Registry
from embedops.trainer.config import TrainConfig, TrainResult
from embedops.trainer.distributed import launch
from embedops.trainer.fit import fit
from embedops.trainer.pairs import TrainingPair

__all__ = ["TrainConfig", "TrainResult", "train"]


def train(registry: Registry, base_ref: str, pairs: list[TrainingPair], *, name: str | None = None,
          general_pairs: list[TrainingPair] | None = None, general_eval: Path | None = None,
          config: TrainConfig | None = None, pair_hashes: list[str] | None = None,
          on_log: Callable[[dict], None] | None = None) -> TrainResult | None:
    """Fine-tune ``base_ref`` on ``pairs`` and register the result as the next version of ``name``.

    With ``config.devices > 1`` this starts that many processes (see :mod:`embedops.trainer.distributed`);
    inside such a process group only rank 0 returns a result (the others return None).
    """
    config = config or TrainConfig()
    kwargs = dict(name=name, general_pairs=general_pairs, general_eval=general_eval, config=config,
                  pair_hashes=pair_hashes, on_log=on_log)
    if config.devices > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return launch(registry, base_ref, pairs, devices=config.devices, **kwargs)
    return fit(registry, base_ref, pairs, **kwargs)
