"""The encoding layer: a sentence-transformers model exported to ONNX (pooling and normalisation in
the graph), the encoder that runs it (ONNX Runtime; OpenVINO's runtime for fp32 on the CPU), parity
against torch, and the process-wide cache of open encoders. Below the stages; knows nothing of the registry.

    from embedops.encoding import OnnxEncoder, export_onnx, measure_parity
"""

from embedops.encoding.cache import ENCODERS, EncoderCache
from embedops.encoding.encoder import OnnxEncoder, choose_providers, choose_runtime
from embedops.encoding.export import export_onnx
from embedops.encoding.layout import META_FILE, OUTPUT_NAME, PRECISIONS, read_st_layout
from embedops.encoding.parity import PARITY_THRESHOLDS, Parity, measure_parity
from embedops.errors import ExportError

__all__ = ["ENCODERS", "EncoderCache", "ExportError", "META_FILE", "OUTPUT_NAME", "OnnxEncoder", "PARITY_THRESHOLDS",
           "PRECISIONS", "Parity", "choose_providers", "choose_runtime", "export_onnx", "measure_parity", "read_st_layout"]
