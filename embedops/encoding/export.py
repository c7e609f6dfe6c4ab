"""Export a sentence-transformers model to ONNX with its pooling and L2 normalisation in the graph.

The transformer is exported by torch's own exporter (``torch.onnx.export``, TorchScript tracing with
dynamic batch and sequence axes; optimum-onnx is not needed); embedops then
appends the model's own pooling (read from ``1_Pooling/config.json``: mean, CLS, max, mean-sqrt-len,
concatenated in sentence-transformers' order) and L2 normalisation as ONNX nodes, so the graph
returns only ``sentence_embedding`` of shape (batch, dim). Keeping pooling inside the graph is what
makes ONNX Runtime fast on a GPU (see ../shared/gpu/NOTES.md: 7x slower with pooling outside).

Variants:

* ``fp32``: the plain export (CPU default);
* ``fp16``: ONNX Runtime's transformer optimiser (attention / LayerNorm / GELU fusions) and fp16
  weights, pooling kept in fp32 (GPU);
* ``int8``: optimiser fusions for CPU, then dynamic int8 quantisation of the weights
  (``onnxruntime.quantization.quantize_dynamic``; CPU, opt-in);
* ``bf16``: the fp32 graph, run by OpenVINO's runtime with its bf16 inference precision on CPUs with
  AVX512-BF16 or AMX (:mod:`embedops.encoding.openvino_runtime`). The weights stay fp32 on disk;
  OpenVINO converts them when it compiles the graph, keeping LayerNorm, softmax and the pooled
  output's normalisation in f32 as its CPU plug-in does.

Parity against sentence-transformers is measured at export on sample texts: the mean and minimum
cosine are recorded and the export fails below the thresholds (fp32 0.999, fp16, int8 and bf16 0.99).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from embedops.encoding.layout import META_FILE, OPSET, OUTPUT_NAME, PRECISIONS, TOKENIZER_FILES, read_st_layout
from embedops.errors import ExportError

__all__ = ["ExportError", "append_pooling", "export_onnx", "export_transformer"]


def append_pooling(model, modes: list[str]):
    """Append pooling + L2 normalisation to an exported transformer graph (in place)."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    hidden = "last_hidden_state"
    if hidden not in [o.name for o in g.output]:
        raise ExportError(f"exported graph has no {hidden!r} output: {[o.name for o in g.output]}")
    p = "embedops_pool/"

    def const(name, value, dtype=np.float32):
        g.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), p + name))
        return p + name

    nodes = [
        helper.make_node("Cast", ["attention_mask"], [p + "mask_f"], to=TensorProto.FLOAT, name=p + "cast"),
        helper.make_node("Unsqueeze", [p + "mask_f", const("axis2", [2], np.int64)], [p + "mask3"], name=p + "unsq"),
    ]
    axis1 = const("axis1", [1], np.int64)
    parts = []
    if {"mean", "mean_sqrt_len"} & set(modes):
        nodes += [
            helper.make_node("Mul", [hidden, p + "mask3"], [p + "masked"], name=p + "mul"),
            helper.make_node("ReduceSum", [p + "masked", axis1], [p + "sum"], keepdims=0, name=p + "sum"),
            helper.make_node("ReduceSum", [p + "mask3", axis1], [p + "count0"], keepdims=0, name=p + "cnt"),
            helper.make_node("Max", [p + "count0", const("eps_count", 1e-9)], [p + "count"], name=p + "clamp"),
        ]
    for mode in modes:
        if mode == "mean":
            nodes.append(helper.make_node("Div", [p + "sum", p + "count"], [p + "mean"], name=p + "mean"))
        elif mode == "mean_sqrt_len":
            nodes += [
                helper.make_node("Sqrt", [p + "count"], [p + "sqrt"], name=p + "sqrt"),
                helper.make_node("Div", [p + "sum", p + "sqrt"], [p + "mean_sqrt_len"], name=p + "msl"),
            ]
        elif mode == "cls":
            nodes.append(helper.make_node("Gather", [hidden, const("zero", 0, np.int64)], [p + "cls"], axis=1, name=p + "cls"))
        elif mode == "max":
            nodes += [
                helper.make_node("Sub", [const("one", 1.0), p + "mask3"], [p + "inv"], name=p + "inv"),
                helper.make_node("Mul", [p + "inv", const("big", -1e4)], [p + "pen"], name=p + "pen"),
                helper.make_node("Add", [hidden, p + "pen"], [p + "pen_h"], name=p + "penh"),
                helper.make_node("ReduceMax", [p + "pen_h", axis1], [p + "max"], keepdims=0, name=p + "max"),
            ]
        parts.append(p + mode)
    pooled = parts[0]
    if len(parts) > 1:
        nodes.append(helper.make_node("Concat", parts, [p + "concat"], axis=1, name=p + "concat"))
        pooled = p + "concat"
    nodes += [
        helper.make_node("ReduceL2", [pooled, axis1], [p + "norm0"], keepdims=1, name=p + "l2"),
        helper.make_node("Max", [p + "norm0", const("eps_norm", 1e-12)], [p + "norm"], name=p + "l2clamp"),
        helper.make_node("Div", [pooled, p + "norm"], [OUTPUT_NAME], name=p + "normalize"),
    ]
    g.node.extend(nodes)
    while len(g.output):
        g.output.pop()
    g.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch_size", None]))
    return model


@contextlib.contextmanager
def _quiet():
    """Silence exporter chatter (tracer warnings, deprecation notes, ONNX Runtime's quantiser, which
    logs to the root logger) for the duration of an export; logger levels and warning filters are
    restored afterwards."""
    loggers = [logging.getLogger(), logging.getLogger("transformers")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _last_hidden_state_module(model, input_names: list[str]):
    """Wrap a Hugging Face encoder so the traced graph takes ``input_names`` in order and returns only
    ``last_hidden_state``."""
    import torch

    class _LastHiddenState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(input_names, inputs)), return_dict=True).last_hidden_state

    return _LastHiddenState().eval()


def _load_transformer(model_dir: Path):
    """The bare Hugging Face model of a sentence-transformers directory: safetensors only, no remote
    code, eager attention (the pattern ONNX Runtime's transformer optimiser fuses)."""
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(model_dir), local_files_only=True, use_safetensors=True,
                                         trust_remote_code=False, attn_implementation="eager").eval()
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot load the transformer in {model_dir} for export: {exc}") from exc


def _input_names(model) -> list[str]:
    import inspect

    accepted = inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in accepted and getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return names


def export_transformer(model_dir: Path, out_path: Path) -> None:
    """Export the bare transformer (``last_hidden_state``) with ``torch.onnx.export``.

    The TorchScript exporter (``dynamo=False``) traces one sample batch with dynamic batch and
    sequence axes at :data:`OPSET`; it needs no extra package, and its BERT graph is the one ONNX
    Runtime's optimiser fuses (attention, LayerNorm, GELU). The weights are written inline (models
    under 2 GB), so ``model.onnx`` stays one self-contained file.
    """
    import torch

    model = _load_transformer(model_dir)
    names = _input_names(model)
    batch, seq = 2, 16
    sample = {"input_ids": torch.ones(batch, seq, dtype=torch.long),
              "attention_mask": torch.ones(batch, seq, dtype=torch.long),
              "token_type_ids": torch.zeros(batch, seq, dtype=torch.long)}
    sample["attention_mask"][1, seq // 2:] = 0  # one padded row, so the mask path is traced
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in names}
    axes["last_hidden_state"] = {0: "batch_size", 1: "sequence_length"}
    with _quiet(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            torch.onnx.export(
                _last_hidden_state_module(model, names), tuple(sample[n] for n in names), str(out_path),
                input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                opset_version=OPSET, dynamo=False, do_constant_folding=True,
            )
        except Exception as exc:  # the tracer raises many types; report which model failed
            raise ExportError(f"torch.onnx.export could not export {model_dir}: {exc}") from exc


def _transformer_dims(model_dir: Path) -> tuple[int, int]:
    cfg = json.loads((model_dir / "config.json").read_text("utf-8"))
    return int(cfg.get("num_attention_heads", 0)), int(cfg.get("hidden_size", 0))


def _optimize(raw: Path, model_dir: Path, use_gpu: bool):
    """ONNX Runtime's transformer optimiser: attention, LayerNorm, GELU and bias fusions."""
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = _transformer_dims(model_dir)
    # opt_level=0: the Python fusions only, no ONNX Runtime session (none is needed to fuse, and a
    # CUDA session cannot start on a machine without a GPU). Runtime optimisations happen at load.
    with _quiet(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=hidden,
                              opt_level=0, use_gpu=use_gpu)


def export_onnx(model_dir: Path, out_dir: Path, precision: str = "fp32") -> dict:
    """Export ``model_dir`` to ``out_dir`` (model.onnx with pooling, tokenizer, meta) at ``precision``."""
    import onnx

    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    layout = read_st_layout(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "transformer.onnx"
        export_transformer(model_dir, raw)
        if precision == "fp16":
            optimized = _optimize(raw, model_dir, use_gpu=True)
            # keep_io_types: last_hidden_state stays fp32, so the appended pooling runs in fp32
            optimized.convert_float_to_float16(keep_io_types=True)
            optimized.save_model_to_file(str(raw))
        elif precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            optimized = _optimize(raw, model_dir, use_gpu=False)
            fused = Path(tmp) / "fused.onnx"
            optimized.save_model_to_file(str(fused))
            with _quiet():
                quantize_dynamic(str(fused), str(raw), weight_type=QuantType.QInt8, per_channel=True,
                                 op_types_to_quantize=["MatMul"],
                                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        model = onnx.load(str(raw))
        append_pooling(model, layout["pooling"])
        onnx.save(model, str(out_dir / "model.onnx"))
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, out_dir / name)
    meta = layout | {"precision": precision, "inputs": [i.name for i in model.graph.input],
                     "output": OUTPUT_NAME, "opset": OPSET, "fused": precision in ("fp16", "int8")}
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return meta
