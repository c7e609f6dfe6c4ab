"""The training step the memory and precision benchmarks share: SciFact abstracts as documents,
a title-derived query for each, and three other abstracts as its negatives (as ``pairs mine``
gives three), enough for ``steps`` steps of ``batch`` pairs."""

from pathlib import Path

from embedops.corpus import doc_text, read_documents
from embedops.trainer.pairs import TrainingPair


def step_pairs(scifact: Path | str, steps: int, batch: int) -> list[TrainingPair]:
    docs = read_documents(scifact)[: 4 * steps * batch]
    texts = [doc_text(d.title, d.text) for d in docs]
    n = steps * batch
    return [TrainingPair(f"{docs[i].title[:60]} evidence", texts[i], docs[i].id,
                         [texts[n + i], texts[2 * n + i], texts[3 * n + i]]) for i in range(n)]
