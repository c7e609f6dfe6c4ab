"""``mnrl``: MultipleNegativesRankingLoss (InfoNCE with in-batch negatives plus the mined hard
negatives; Henderson et al., 2017, "Efficient Natural Language Response Suggestion for Smart Reply";
van den Oord et al., 2018). Takes (anchor, positive, negative_1..n) rows; every other row's positive
and negatives in the batch are negatives of an anchor, which is why embedops' batches never hold a
known positive of a row's query (:mod:`embedops.trainer.batching`). Keeps every text's activations of a
step for the backward pass: memory grows with batch x texts x tokens.

    embedops train --base minilm@1 --pairs mined.jsonl --loss mnrl
"""

from __future__ import annotations

from embedops.trainer.losses import LossSetup, register_loss


@register_loss("mnrl")
def mnrl(model, setup: LossSetup):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, gather_across_devices=setup.gather_across_devices)
