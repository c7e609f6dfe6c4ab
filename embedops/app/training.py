"""Fine-tuning from pair files, as ``embedops train`` runs it: read and check the pairs (looking up
``doc_id`` lines in a corpus of the store), key the run by the files' checksums, train.

>>> result = train_from_files(registry, "minilm@1", Path("mined.jsonl"), config=TrainConfig(epochs=1))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from embedops.checksums import sha256_file
from embedops.registry import Registry
from embedops.trainer.pairs import read_pairs
from embedops.trainer.train import TrainConfig, TrainResult, train


def train_from_files(registry: Registry, base: str, pairs_path: Path, *, corpus: str | None = None,
                     general: Path | None = None, general_eval: Path | None = None, name: str | None = None,
                     config: TrainConfig | None = None, on_start: Callable[[int], None] | None = None,
                     on_log: Callable[[dict], None] | None = None) -> TrainResult | None:
    """Train ``base`` on the pairs in ``pairs_path`` (and replay ``general`` pairs); ``on_start(n)``
    is told how many pairs were read before training starts."""
    pairs = read_pairs(pairs_path, corpus=registry.corpora.texts(corpus) if corpus else None)
    general_pairs = read_pairs(general) if general else None
    hashes = [sha256_file(pairs_path)] + ([sha256_file(general)] if general else [])
    if on_start:
        on_start(len(pairs))
    return train(registry, base, pairs, name=name, general_pairs=general_pairs, general_eval=general_eval,
                 config=config, pair_hashes=hashes, on_log=on_log)
