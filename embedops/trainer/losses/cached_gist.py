"""``cached-gist``: CachedGISTEmbedLoss with the base model as guide (Solatorio, 2024, "GISTEmbed:
Guided In-sample Selection of Training Negatives for Text Embedding Fine-tuning", in its GradCache
form). The frozen base model scores every in-batch candidate; a candidate it rates above the anchor's
own positive is masked out as a probable false negative. Where documents are relevant to many
queries this removes in-batch negatives that nobody labelled but that are right answers, at the
cost of embedding each batch a second time with the guide.

Not the default: it has not been measured against ``mnrl`` on more than one domain (see
docs/BENCHMARKS.md); choose it with ``--loss cached-gist``.

    embedops train --base minilm@1 --pairs mined.jsonl --loss cached-gist
"""

from __future__ import annotations

from embedops.trainer.losses import LossSetup, register_loss


@register_loss("cached-gist")
def cached_gist(model, setup: LossSetup):
    from sentence_transformers.sentence_transformer.losses import CachedGISTEmbedLoss

    return CachedGISTEmbedLoss(model, setup.load_guide(), mini_batch_size=setup.mini_batch_size,
                               gather_across_devices=setup.gather_across_devices)
