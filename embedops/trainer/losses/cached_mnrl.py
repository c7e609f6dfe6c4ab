"""``cached-mnrl``: CachedMultipleNegativesRankingLoss, the GradCache form of ``mnrl`` (Gao et al.,
2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"). Same objective,
same in-batch negatives, same effective batch; it embeds ``mini_batch_size`` texts at a time and
trades a second forward pass for memory that no longer grows with the batch. ``--loss auto`` picks it
when a step would hold more than 8,192 tokens of activations (:func:`embedops.trainer.config.resolve_loss`).

    embedops train --base minilm@1 --pairs mined.jsonl --loss cached-mnrl --mini-batch-size 8
"""

from __future__ import annotations

from embedops.trainer.losses import LossSetup, register_loss


@register_loss("cached-mnrl")
def cached_mnrl(model, setup: LossSetup):
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    return CachedMultipleNegativesRankingLoss(model, mini_batch_size=setup.mini_batch_size,
                                              gather_across_devices=setup.gather_across_devices)
