"""Index footprints: int8 / binary / rescored / truncated vectors searched exactly (issue #36)."""

import numpy as np
import pytest

from embedops.errors import UsageError
from embedops.index.footprints import Footprint, footprint, footprint_names


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


DOCS, QUERIES = _unit(400, 64, 0), _unit(30, 64, 1)


def _exact(docs, queries, k):
    return np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :k]


def _overlap(a, b) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b)]))


def test_bytes_per_document_are_what_each_kind_keeps():
    assert (footprint("float32").searched_bytes(384), footprint("int8").searched_bytes(384)) == (1536, 384)
    assert footprint("binary").searched_bytes(384) == 48 and footprint("binary").kept_bytes(384) == 48
    assert footprint("binary+int8").kept_bytes(384) == 48 + 384
    assert footprint("binary+float32").kept_bytes(384) == 48 + 1536
    assert footprint("float32", 128).searched_bytes(384) == 512 and footprint("float32", 128).name == "float32@128"


def test_float32_is_exact_search_and_the_smaller_kinds_approximate_it_in_order():
    idx, scores = footprint("float32").prepare(DOCS).search(QUERIES, 10)
    assert np.array_equal(idx, _exact(DOCS, QUERIES, 10))
    assert np.allclose(scores, np.take_along_axis(QUERIES @ DOCS.T, idx, axis=1), atol=1e-6)
    agree = {n: _overlap(footprint(n).prepare(DOCS).search(QUERIES, 10)[0], idx) for n in footprint_names()}
    assert agree["int8"] > 0.7  # random vectors are a hard case: their scores are close together
    assert agree["binary"] < 0.5  # sign bits of 64 dimensions lose much of the order ...
    assert agree["binary+float32"] > agree["binary"] + 0.2 and agree["binary+int8"] > agree["binary"] + 0.2  # rescoring wins it back


def test_binary_rescored_over_every_document_is_exact_float32_search():
    fp = footprint("binary+float32")
    idx, _ = fp.prepare(DOCS[:40]).search(QUERIES, 10)  # 4 x 10 candidates: every document is rescored
    assert np.array_equal(idx, _exact(DOCS[:40], QUERIES, 10))


def test_truncation_keeps_the_leading_dimensions_renormalised():
    idx, _ = footprint("float32", 16).prepare(DOCS).search(QUERIES, 5)
    cut = lambda x: x[:, :16] / np.linalg.norm(x[:, :16], axis=1, keepdims=True)  # noqa: E731
    assert np.array_equal(idx, _exact(cut(DOCS), cut(QUERIES), 5))


def test_unknown_footprints_and_impossible_dimensions_are_refused():
    with pytest.raises(UsageError, match="unknown footprint 'pq4'; choose from float32, int8"):
        footprint("pq4")
    with pytest.raises(UsageError, match="--dims must be positive"):
        footprint("float32", 0)
    with pytest.raises(UsageError, match="--dims 128 is more than the index's 64 dimensions"):
        Footprint("float32", 128).prepare(DOCS)
