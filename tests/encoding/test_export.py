import json
import shutil

import numpy as np
import pytest

from helpers import bundled_model_path
from embedops.errors import ModelFormatError
from embedops.encoding import META_FILE, OUTPUT_NAME, OnnxEncoder, export_onnx, measure_parity, read_st_layout


def _set_pooling(model_dir, modes):
    cfg_path = model_dir / "1_Pooling" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["pooling_mode"] = modes
    cfg_path.write_text(json.dumps(cfg))


def test_graph_ends_in_pooling_and_returns_only_sentence_embeddings(tiny_model_dir, tmp_path):
    import onnx

    meta = export_onnx(tiny_model_dir, tmp_path / "out", "fp32")
    graph = onnx.load(str(tmp_path / "out" / "model.onnx")).graph
    assert [o.name for o in graph.output] == [OUTPUT_NAME]
    assert meta["pooling"] == ["mean"] and meta["dim"] == 32
    emb = OnnxEncoder(tmp_path / "out").encode(["hello world", "a much longer sentence " * 10])
    assert emb.shape == (2, 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("modes", ["cls", "max", ["mean", "max"], ["max", "cls"], "mean_sqrt_len_tokens"])
def test_each_pooling_mode_matches_sentence_transformers(tiny_model_dir, tmp_path, modes):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    _set_pooling(model, modes)
    export_onnx(model, tmp_path / "out", "fp32")
    parity = measure_parity(model, OnnxEncoder(tmp_path / "out"), "fp32")
    assert parity.ok and parity.min_cosine > 0.999, parity


def test_unsupported_module_stacks_are_refused(tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    modules = json.loads((model / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (model / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelFormatError, match="Dense"):
        read_st_layout(model)


@pytest.mark.slow
def test_minilm_variants_reach_parity_thresholds(tmp_path):
    base = bundled_model_path()
    for precision, threshold in (("fp32", 0.999), ("int8", 0.99), ("fp16", 0.99)):
        export_onnx(base, tmp_path / precision, precision)
        parity = measure_parity(base, OnnxEncoder(tmp_path / precision), precision)
        assert parity.min_cosine >= threshold, (precision, parity)
    assert json.loads((tmp_path / "int8" / META_FILE).read_text())["fused"] is True
    # int8 MatMul weights make the file smaller (the embedding table stays fp32)
    assert (tmp_path / "int8" / "model.onnx").stat().st_size < 0.8 * (tmp_path / "fp32" / "model.onnx").stat().st_size
