import json
import shutil

import pytest

from embedops.errors import ChecksumMismatchError, ModelFormatError, ModelNotFoundError, UsageError
from embedops.registry import Registry, parse_ref
from embedops.store import Store


@pytest.fixture
def reg(tmp_path):
    return Registry(Store.open(str(tmp_path / "s")))


def test_versions_count_up_per_name_with_lineage(reg, tiny_model_dir):
    a1 = reg.models.register("tiny", tiny_model_dir, params={"lr": 2e-5}, notes="first")
    a2 = reg.models.register("tiny", tiny_model_dir, parent="tiny@1")
    b1 = reg.models.register("other", tiny_model_dir)
    assert (a1.ref, a2.ref, b1.ref) == ("tiny@1", "tiny@2", "other@1")
    got = reg.models.get("tiny@2")
    assert got.parent == "tiny@1" and got.creator == "tester@ci"
    assert reg.models.get("tiny").ref == "tiny@2"  # bare name = latest
    assert reg.models.get("tiny@1").params == {"lr": 2e-5} and reg.models.get("tiny@1").notes == "first"
    assert {f.path for f in got.files} >= {"modules.json", "model.safetensors", "config.json"}
    assert all(len(f.sha256) == 64 for f in got.files)
    # identical content is stored once
    assert a1.artifact == a2.artifact == b1.artifact


def test_loaded_model_embeds_like_the_source(reg, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    reg.models.register("tiny", tiny_model_dir)
    loaded = reg.models.load("tiny@1")
    direct = SentenceTransformer(str(tiny_model_dir), device="cpu")
    a = loaded.encode(["hello there"], normalize_embeddings=True)
    b = direct.encode(["hello there"], normalize_embeddings=True)
    assert float((a * b).sum()) > 0.9999


def test_tampered_weights_are_detected_and_refused(reg, tiny_model_dir):
    mv = reg.models.register("tiny", tiny_model_dir)
    weights = reg.models.artifact_path(mv) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    problems = reg.models.verify("tiny@1")
    assert len(problems) == 1 and problems[0].startswith("model.safetensors: sha256")
    with pytest.raises(ChecksumMismatchError, match="model.safetensors"):
        reg.models.load("tiny@1")


def test_added_or_removed_files_are_detected(reg, tiny_model_dir):
    mv = reg.models.register("tiny", tiny_model_dir)
    root = reg.models.artifact_path(mv)
    (root / "extra.bin").write_bytes(b"\x80\x04evil")
    (root / "modules.json").unlink()
    problems = reg.models.verify("tiny@1")
    assert "modules.json: missing" in problems
    assert any(p.startswith("extra.bin: unexpected file") for p in problems)


def test_pickle_weights_are_never_copied(reg, tiny_model_dir, tmp_path):
    src = tmp_path / "with-pickle"
    shutil.copytree(tiny_model_dir, src)
    (src / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    mv = reg.models.register("tiny", src)
    assert "pytorch_model.bin" not in {f.path for f in mv.files}


def test_models_without_safetensors_or_with_remote_code_are_refused(reg, tiny_model_dir, tmp_path):
    only_pickle = tmp_path / "only-pickle"
    shutil.copytree(tiny_model_dir, only_pickle)
    (only_pickle / "model.safetensors").unlink()
    with pytest.raises(ModelFormatError, match="no .safetensors"):
        reg.models.register("tiny", only_pickle)
    remote = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, remote)
    cfg = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps(cfg | {"auto_map": {"AutoModel": "x.Model"}}))
    with pytest.raises(ModelFormatError, match="trust_remote_code"):
        reg.models.register("tiny", remote)
    with pytest.raises(ModelFormatError, match="modules.json"):
        reg.models.register("tiny", tmp_path)
    custom = tmp_path / "custom-module"
    shutil.copytree(tiny_model_dir, custom)
    modules = json.loads((custom / "modules.json").read_text())
    modules[1]["type"] = "my_package.pooling.FancyPooling"
    (custom / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelFormatError, match=r"modules.json: module 1 has type 'my_package.pooling.FancyPooling'"):
        reg.models.register("tiny", custom)
    assert reg.models.list() == []


def test_models_whose_prompts_would_be_dropped_are_refused(reg, tiny_model_dir, tmp_path):
    prompted = tmp_path / "prompted"
    shutil.copytree(tiny_model_dir, prompted)
    cfg_path = prompted / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg_path.write_text(json.dumps(cfg | {"prompts": {"query": "query: ", "document": ""}}))
    with pytest.raises(ModelFormatError, match=r"config_sentence_transformers.json: field 'prompts' gives 'query'"):
        reg.models.register("tiny", prompted)
    assert reg.models.list() == []
    cfg_path.write_text(json.dumps(cfg | {"prompts": {"query": "", "document": ""}}))  # what ST 6 saves
    assert reg.models.register("tiny", prompted).ref == "tiny@1"


def test_unknown_refs(reg, tiny_model_dir):
    reg.models.register("tiny", tiny_model_dir)
    with pytest.raises(ModelNotFoundError, match="known: tiny@1"):
        reg.models.get("tiny@9")
    with pytest.raises(ModelNotFoundError):
        reg.models.register("x", tiny_model_dir, parent="ghost@1")
    with pytest.raises(UsageError):
        parse_ref("tiny@zero")
    assert parse_ref("tiny@latest") == ("tiny", None)


def test_bundled_base_model_registers_offline(reg):
    mv = reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    assert mv.ref == "minilm@1" and reg.models.verify("minilm@1") == []
    with pytest.raises(UsageError, match="available: all-MiniLM-L6-v2"):
        reg.models.register("x", "bundled:gpt-5")
