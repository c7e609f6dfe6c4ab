"""Matryoshka training (issue #36): the run's loss, applied to the embedding cut to each of several
leading dimensions too, so the model can later be served truncated (Kusupati et al., 2022,
"Matryoshka Representation Learning"). Wraps any registered loss in sentence-transformers'
``MatryoshkaLoss``; the trained version records ``matryoshka_dims`` in its params, which is what lets
an index be cut to those dimensions (``embedops index plan --dims`` measures the cost first).

    embedops train --base minilm@1 --pairs mined.jsonl --matryoshka-dims 384,256,128,64
"""

from __future__ import annotations

from embedops.errors import UsageError


def matryoshka(model, loss, dims: tuple[int, ...]):
    """``loss`` over each of ``dims`` (largest first, the first at most the model's dimension)."""
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

    full = model.get_embedding_dimension()
    if dims[0] > full:
        raise UsageError(f"--matryoshka-dims {dims[0]} is more than the model's {full} dimensions")
    return MatryoshkaLoss(model, loss, list(dims))
