import json
import shutil
from pathlib import Path

import pytest

from helpers import REPO, bundled_model_path
from embedops.registry import Registry
from embedops.store import Store

from guard_helpers import RUNBOOKS

# A small STS set with gold scores (0-5) written for the tests: enough for Spearman to mean something.
STS = [
    (5.0, "A man is playing a guitar.", "A man plays the guitar."),
    (4.6, "A woman is slicing an onion.", "A woman cuts an onion."),
    (0.2, "A man is playing a guitar.", "The stock market fell sharply today."),
    (3.8, "Two dogs run across a field.", "Two dogs are running on the grass."),
    (0.0, "A cat sleeps on the sofa.", "The government passed a new tax law."),
    (2.5, "A child is riding a bike.", "A child is walking with a bike."),
    (4.2, "The train arrived late.", "The train was delayed."),
    (1.0, "She is cooking pasta.", "She is reading a book."),
    (3.2, "A plane is taking off.", "An airplane departs from the runway."),
    (0.4, "The baby is crying.", "Engineers repaired the bridge."),
    (4.8, "The sun is shining.", "It is sunny."),
    (1.6, "A boy kicks a ball.", "A boy throws a ball to a dog."),
]


@pytest.fixture(scope="session")
def sts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sts") / "sts.tsv"
    path.write_text("score\tsentence1\tsentence2\n" + "".join(f"{s}\t{a}\t{b}\n" for s, a, b in STS))
    return path


@pytest.fixture(scope="module")
def minilm_store(tmp_path_factory):
    """A store with the runbooks corpus, the bundled MiniLM as minilm@1 and its index in production."""
    from embedops.reembed import IndexBuild

    reg = Registry(Store.open(str(tmp_path_factory.mktemp("guards") / "store")))
    reg.corpora.add("runbooks", RUNBOOKS)
    reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    base = IndexBuild(reg, "minilm@1", "runbooks").run().index
    reg.promote(base.index_id, reason="baseline", override=True)
    return reg, base


