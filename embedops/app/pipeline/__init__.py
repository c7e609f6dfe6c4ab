"""``embedops pipeline run CONFIG.toml``: the main job, from an off-the-shelf model to a fine-tuned,
guarded, promoted, rollback-able one.

Stages: corpus -> base model -> production baseline -> pairs (labelled and/or generated) -> mine ->
train (with forgetting control) -> ONNX export + candidate index -> guards -> shadow -> promote
(only if every gate passes; otherwise stop with the verdict and leave production untouched).

Each stage's output is content-addressed (:mod:`embedops.app.pipeline.runner`): rerunning after a
crash or a config change redoes only the stages whose key changed. Model training additionally
resumes from its last epoch checkpoint and index builds from their last committed chunk.
"""

from embedops.app.pipeline.config import PipelineConfig
from embedops.app.pipeline.run import Pipeline
from embedops.app.pipeline.runner import PipelineReport, StageResult

__all__ = ["Pipeline", "PipelineConfig", "PipelineReport", "StageResult"]
