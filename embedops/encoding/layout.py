"""The on-disk layout of an embedops ONNX export and of the sentence-transformers model it comes from.

An export directory holds ``model.onnx`` (pooling and normalisation inside the graph, one output
``sentence_embedding``), the tokenizer files and ``embedops_onnx.json`` (pooling, dimension, maximum
length, precision). Both the exporter and the encoder read these names from here.
"""

from __future__ import annotations

import json
from pathlib import Path

from embedops.errors import ModelFormatError

OUTPUT_NAME = "sentence_embedding"
META_FILE = "embedops_onnx.json"
OPSET = 18
PRECISIONS = ("fp32", "fp16", "int8", "bf16")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
_POOL_ORDER = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
)

_NEW_MODE_NAMES = {"cls": "cls", "max": "max", "mean": "mean", "mean_sqrt_len_tokens": "mean_sqrt_len"}


def _pooling_modes(cfg: dict, path: Path) -> list[str]:
    """Pooling modes in concatenation order, from either config format of sentence-transformers:
    ``{"pooling_mode": "mean" | [...]}`` (5.x) or ``{"pooling_mode_mean_tokens": true, ...}`` (legacy)."""
    if "pooling_mode" in cfg:
        raw = cfg["pooling_mode"]
        names = [raw] if isinstance(raw, str) else list(raw)
        unknown = [n for n in names if n not in _NEW_MODE_NAMES]
        if unknown or not names:
            raise ModelFormatError(f"{path}: unsupported pooling {unknown or 'none'} (supported: {', '.join(_NEW_MODE_NAMES)})")
        return [_NEW_MODE_NAMES[n] for n in names]
    modes = [name for key, name in _POOL_ORDER if cfg.get(key)]
    others = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v and k not in dict(_POOL_ORDER)]
    if others or not modes:
        raise ModelFormatError(f"{path}: unsupported pooling {others or 'none'}")
    return modes


def _max_seq_length(model_dir: Path, st_cfg: dict) -> int:
    """sentence-transformers' max_seq_length: its own config (<5.7), else the tokenizer's
    model_max_length (5.7+), capped by the model's position embeddings."""
    def load(name):
        path = model_dir / name
        return json.loads(path.read_text("utf-8")) if path.is_file() else {}

    length = st_cfg.get("max_seq_length") or load("tokenizer_config.json").get("model_max_length") or 512
    positions = load("config.json").get("max_position_embeddings") or 512
    return int(min(int(length), int(positions)))


def read_st_layout(model_dir: Path) -> dict:
    """Pooling modes, dimension and max length of a sentence-transformers directory."""
    modules = json.loads((model_dir / "modules.json").read_text("utf-8"))
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    unsupported = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if unsupported or kinds[:2] != ["Transformer", "Pooling"]:
        raise ModelFormatError(
            f"{model_dir}/modules.json: ONNX export supports Transformer -> Pooling [-> Normalize]; found {kinds}"
        )
    pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
    cfg_path = model_dir / pooling_dir / "config.json"
    cfg = json.loads(cfg_path.read_text("utf-8"))
    modes = _pooling_modes(cfg, cfg_path)
    st_cfg_path = model_dir / "sentence_bert_config.json"
    st_cfg = json.loads(st_cfg_path.read_text("utf-8")) if st_cfg_path.is_file() else {}
    hidden = int(cfg.get("embedding_dimension") or cfg["word_embedding_dimension"])
    return {
        "pooling": modes, "hidden_size": hidden, "dim": hidden * len(modes),
        "max_seq_length": _max_seq_length(model_dir, st_cfg),
        "do_lower_case": bool(st_cfg.get("do_lower_case", False)),
    }
