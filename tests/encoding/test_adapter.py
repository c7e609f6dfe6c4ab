"""Query adapters as serving uses them: applying, saving and loading, and the bridged encoder."""

import numpy as np
import pytest

from embedops.encoding.adapter import BridgedEncoder, QueryAdapter
from embedops.errors import UsageError


def _rotation(dim: int, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q.astype(np.float32)


def test_an_adapter_maps_vectors_into_the_old_space_normalised_and_survives_a_save(tmp_path):
    r = _rotation(8)
    adapter = QueryAdapter("procrustes", {"R": r}, {"index_id": "ix"})
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    y = adapter.apply(x)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-6)
    assert np.allclose(y, (x @ r) / np.linalg.norm(x @ r, axis=1, keepdims=True), atol=1e-6)
    loaded = QueryAdapter.load(adapter.save(tmp_path / "a"))
    assert (loaded.kind, loaded.in_dim, loaded.out_dim, loaded.meta) == ("procrustes", 8, 8, {"index_id": "ix"})
    assert np.allclose(loaded.apply(x), y)


def test_an_affine_adapter_changes_dimensions_and_wrong_inputs_are_refused_by_name():
    adapter = QueryAdapter("affine", {"W": np.ones((6, 4), np.float32), "b": np.zeros(4, np.float32)})
    assert adapter.apply(np.ones((2, 6))).shape == (2, 4)
    with pytest.raises(UsageError, match="takes 6-dimensional vectors, got shape"):
        adapter.apply(np.ones((2, 5)))
    with pytest.raises(UsageError, match="unknown adapter kind 'pca'"):
        QueryAdapter("pca", {})
    with pytest.raises(UsageError, match="needs weights W2, b2"):
        QueryAdapter("mlp", {"R": np.eye(4), "W1": np.eye(4), "b1": np.zeros(4)})


class _Encoder:
    dim, provider = 8, "CPUExecutionProvider"

    def encode(self, texts):
        return np.random.default_rng(len(texts)).standard_normal((len(texts), 8)).astype(np.float32)


def test_a_bridged_encoder_embeds_with_the_new_model_then_maps_and_refuses_another_models_adapter():
    adapter = QueryAdapter("affine", {"W": np.ones((8, 4), np.float32), "b": np.zeros(4, np.float32)})
    bridged = BridgedEncoder(_Encoder(), adapter)
    assert bridged.dim == 4 and bridged.encode(["a", "b"]).shape == (2, 4)
    assert "affine adapter" in bridged.provider
    with pytest.raises(UsageError, match="fitted for another model"):
        BridgedEncoder(_Encoder(), QueryAdapter("procrustes", {"R": _rotation(5)}))
