"""embedops index build | plan | list | show | sync | retire | drop, embedops search"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from embedops.app.indexes import build_index, sync_indexes
from embedops.cli._common import (
    JsonOpt,
    QuietOpt,
    app,
    err,
    group,
    handle_errors,
    make_table,
    out,
    print_json,
    print_records,
    progress_bar,
    state,
)
from embedops.errors import UsageError
from embedops.index.footprints import DEFAULT_FOOTPRINTS
from embedops.registry import Searcher

index_app = group("Corpus indexes built blue-green.\n\nExample:  embedops index build minilm@2 --corpus scifact")

@index_app.command("build")
@handle_errors
def index_build(
    ctx: typer.Context,
    model_ref: str = typer.Argument(..., help="Model version to embed with, NAME@N."),
    corpus: str = typer.Option(..., "--corpus", "-c", help="Corpus name."),
    precision: str = typer.Option("auto", "--precision", "-p", help="auto (bf16 on a CPU with AVX512-BF16 or AMX when its export passes parity, else fp32; the index records why), fp32, bf16, fp16 (GPU) or int8 (CPU)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Texts per ONNX Runtime call, per Ray actor too (default 32 on CPU, 256 on CUDA)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when onnxruntime-gpu sees a GPU), cuda or cpu."),
    allow_cpu_fallback: bool = typer.Option(False, "--allow-cpu-fallback", help="Run on the CPU when the CUDA provider cannot start, instead of failing."),
    runtime: str = typer.Option("auto", "--runtime", help="On the CPU: auto (OpenVINO for fp32 and bf16 exports, ONNX Runtime for int8/fp16), onnxruntime or openvino."),
    vectors: str = typer.Option("float32", "--vectors", help="Stored vectors: float32, int8 (1 byte a dimension) or binary (sign bits, searched by hamming distance, then rescored)."),
    rescore: str = typer.Option("int8", "--rescore", help="binary: re-rank the best candidates with int8 codes, float32 vectors, or none."),
    dims: Optional[int] = typer.Option(None, "--dims", help="Keep the first N dimensions (a Matryoshka-trained model's; see --force-dims)."),
    force_dims: bool = typer.Option(False, "--force-dims", help="Build --dims for a model not trained with those Matryoshka dimensions."),
    ann: str = typer.Option("auto", "--ann", help="ANN index kind: auto (IVF_PQ; IVF_FLAT for binary; none for int8), none, ivf_pq, ivf_sq, ivf_rq, ivf_hnsw_sq or ivf_flat (LanceDB's)."),
    ann_threshold: int = typer.Option(100_000, "--ann-threshold", help="Build the ANN index at or above this many documents."),
    partitions: Optional[int] = typer.Option(None, "--partitions", help="IVF partitions (default: sqrt of the documents)."),
    sub_vectors: Optional[int] = typer.Option(None, "--sub-vectors", help="IVF_PQ sub-vectors (default: dimensions / 8)."),
    nprobes: int = typer.Option(20, "--nprobes", help="Partitions every search of the index probes."),
    refine_factor: int = typer.Option(5, "--refine-factor", help="Candidates re-ranked with full vectors, per result."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (Ray Data: encoder actors write Lance fragments; see docs/SCALING.md)."),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster address ('auto', 'ray://head:10001'); default: start a local cluster."),
    workers: int = typer.Option(2, "--workers", help="ray: encoder actors."),
    gpus_per_worker: float = typer.Option(0, "--gpus-per-worker", help="ray: GPUs per encoder actor (0: CPU actors)."),
    cpus_per_worker: int = typer.Option(1, "--cpus-per-worker", help="ray: CPUs per actor (ONNX threads; on GPU actors, tokenisation)."),
    wait: bool = typer.Option(False, "--wait", help="If a build of the same model, corpus and precision is running, wait for it (and use its index) instead of failing."),
    as_json: bool = JsonOpt,
):
    """Build a new index of a corpus with a model version while aliases keep serving the old one.

    Rerun the same command after a crash to resume it. Documents added, changed or deleted during
    the build are caught up before the index is checked and marked ready. Prints the index id.
    Builds of the same model, corpus and precision run one at a time: a second one exits with code
    3 naming the running one, or with --wait waits and prints the index the first one built.

    Example:  embedops index build minilm@2 --corpus scifact
    Example:  embedops index build minilm@2 --corpus scifact --precision fp32
    Example:  embedops index build minilm@2 --corpus scifact --device cuda --precision fp16
    Example:  embedops index build minilm@2 --corpus scifact --engine ray --workers 2 --gpus-per-worker 1 --cpus-per-worker 8
    Example:  embedops index build minilm@2 --corpus scifact --wait
    Example:  embedops index build minilm@2 --corpus scifact --ann ivf_hnsw_sq --ann-threshold 1000
    Example:  embedops index build minilm@2 --corpus scifact --vectors binary --rescore int8
    """
    from embedops.index import IndexSettings

    settings = IndexSettings(vectors=vectors, rescore=rescore, dims=dims, ann=ann, ann_threshold=ann_threshold,
                             partitions=partitions, sub_vectors=sub_vectors, nprobes=nprobes,
                             refine_factor=refine_factor)
    registry = state(ctx).registry
    registry.models.get(model_ref)  # an unknown model or corpus is an error before any progress is drawn
    registry.corpora.info(corpus)
    with progress_bar() as progress:
        task = progress.add_task(f"embedding {corpus}", total=None, rate="-")
        started = {}

        def on_progress(done, total):
            started.setdefault("t", (time.perf_counter(), done))
            t0, d0 = started["t"]
            rate = (done - d0) / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, completed=done, total=total, rate=f"{rate:,.0f}" if done > d0 else "-")

        def on_wait(holder):
            progress.console.print(f"waiting: {holder} is building the same index ...")

        report = build_index(state(ctx).registry, model_ref, corpus, engine=engine, address=address, workers=workers,
                             gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker, precision=precision,
                             batch_size=batch_size, device=device, allow_cpu_fallback=allow_cpu_fallback, runtime=runtime,
                             settings=settings, on_progress=on_progress, wait=wait, on_wait=on_wait,
                             force_dims=force_dims)
    if as_json:
        print_json({"index": report.index.to_dict(), "embedded": report.embedded, "deleted": report.deleted,
                    "providers": report.providers_used,
                    "resumed_from": report.resumed_from, "seconds": report.seconds,
                    "finished_by_other": report.finished_by_other})
        return
    if report.finished_by_other:
        err.print(f"a concurrent build of the same inputs finished {report.index.index_id} while this one waited")
        typer.echo(report.index.index_id)
        return
    if report.resumed_from:
        err.print(f"resumed: {report.resumed_from} documents were already embedded")
    err.print(f"embedded {report.embedded} documents in {report.seconds:.1f}s "
              f"({report.docs_per_second:,.0f} docs/s) on {', '.join(report.providers_used) or 'no provider'}; "
              "integrity checks passed")
    choice = report.index.metrics.get("precision_choice")
    if choice:
        err.print(f"precision auto -> {choice['reason']}")
    typer.echo(report.index.index_id)


@index_app.command("plan")
@handle_errors
def index_plan(
    ctx: typer.Context,
    index_id: str = typer.Argument(..., help="Ready index whose stored vectors are measured."),
    gold: Path = typer.Option(..., "--gold", help="Gold set: BEIR directory (queries.jsonl + qrels/test.tsv)."),
    footprints: str = typer.Option(",".join(DEFAULT_FOOTPRINTS), "--footprints", help="Comma-separated: float32, int8, binary, binary+int8, binary+float32."),
    dims: str = typer.Option("", "--dims", help="Matryoshka truncations to add, comma-separated (e.g. 256,128)."),
    max_loss: float = typer.Option(1.0, "--max-loss", help="Points of nDCG@10 a footprint may lose: within when its paired interval's lower bound is not below -MAX_LOSS."),
    policy_file: Optional[Path] = typer.Option(None, "--policy", help="Policy file for the interval's confidence and min_gold_queries (default ./embedops.toml or built-in defaults)."),
    as_json: bool = JsonOpt,
):
    """Measure what smaller vectors would cost an index in retrieval quality, on your gold set.

    Each footprint (int8, binary sign bits, binary rescored with int8 or float32, fewer
    dimensions) is simulated exactly from the index's stored float32 vectors and compared with
    float32 query by query, with the domain gate's paired interval. Picks the footprint that
    searches the fewest bytes per document within --max-loss, and prints the 'index build'
    command that stores an index that way. Nothing is written.

    Example:  embedops index plan scifact--minilm-v1--707bb951 --gold data/scifact
    Example:  embedops index plan scifact--minilm-v1--707bb951 --gold data/scifact --dims 256,128 --max-loss 0.5
    """
    from embedops.app.footprint_plan import plan_footprints
    from embedops.guards import load_policy

    names = [n.strip() for n in footprints.split(",") if n.strip()]
    try:
        cuts = [int(d) for d in dims.split(",") if d.strip()]
    except ValueError:
        raise UsageError(f"--dims takes whole numbers separated by commas, got {dims!r}") from None
    with err.status("measuring footprints ...") as status:
        plan = plan_footprints(state(ctx).registry, index_id, gold, names=names, dims=cuts, max_loss=max_loss,
                               policy=load_policy(policy_file),
                               progress=lambda name: status.update(f"measuring {name} ..."))
    if as_json:
        print_json(plan.to_dict())
        return
    t = make_table("footprint", "bytes/doc", "nDCG@10", "R@10", f"vs float32 ({plan.confidence:.0%})", "ok",
                   title=f"{plan.index_id}: {plan.documents:,} docs, {plan.queries} queries")
    for r in plan.rows:
        kept = f" ({r.kept_bytes:g})" if r.kept_bytes != r.searched_bytes else ""
        t.add_row(r.name, f"{r.searched_bytes:g}{kept}", f"{r.ndcg:.2f}", f"{r.recall:.1f}",
                  f"{-r.mean_loss:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]", "yes" if r.within else "no")
    out.print(t)
    out.print("bytes/doc: what a search reads; (all kept, with rescoring vectors)")
    for note in plan.notes:
        out.print(f"note: {note}")
    if plan.chosen:
        out.print(f"smallest within {plan.max_loss:g} points: [bold]{plan.chosen}[/]")
        if plan.build_command:
            out.print("build it, then guard and promote it as any index:")
            out.print(plan.build_command, soft_wrap=True)
    else:
        out.print(f"no footprint is within {plan.max_loss:g} points")


def _kept(rec) -> str:
    """``, int8`` when an index keeps other than all its float32 dimensions."""
    footprint = rec.settings.index.footprint
    return "" if footprint == "float32" else f", {footprint}"


@index_app.command("list")
@handle_errors
def index_list(ctx: typer.Context, as_json: bool = JsonOpt, quiet: bool = QuietOpt):
    """List indexes with their model, corpus and status.

    Example:  embedops index list --json
    """
    reg = state(ctx).registry
    aliases: dict[str, list[str]] = {}
    for a in reg.aliases.list():
        if a.value:
            aliases.setdefault(a.value, []).append(a.name)
    print_records(reg.indexes.list(), as_json, ("index", "model", "corpus", "precision", "status", "docs", "aliases"),
                  lambda i: [i.index_id, i.model_ref, i.corpus, i.precision + _kept(i), i.status.value, str(i.doc_count or "-"),
                             ", ".join(aliases.get(i.index_id, []))],
                  title="Indexes", empty="no indexes yet: embedops index build MODEL_REF --corpus NAME", quiet=quiet)


@index_app.command("sync")
@handle_errors
def index_sync(
    ctx: typer.Context,
    index_id: Optional[str] = typer.Argument(None, help="Index to sync; default: every index an alias points at."),
    as_json: bool = JsonOpt,
):
    """Bring live indexes up to date after 'corpus add': embed only added or changed documents with
    each index's own model, remove deleted ones; no full rebuild.

    Example:  embedops index sync
    """
    def syncing(i: str):
        return err.status(f"syncing {i} ...")

    reports = sync_indexes(state(ctx).registry, index_id, around=syncing)
    if as_json:
        print_json([{"index_id": r.index.index_id, "embedded": r.embedded, "deleted": r.deleted,
                     "table_version": r.index.table_version} for r in reports])
        return
    for r in reports:
        out.print(f"{r.index.index_id}: {r.embedded} embedded, {r.deleted} deleted (table version {r.index.table_version})")
    if not reports:
        out.print("no aliased indexes to sync")


@index_app.command("show")
@handle_errors
def index_show(
    ctx: typer.Context,
    index_id: str = typer.Argument(..., help="Index id."),
    as_json: bool = JsonOpt,
):
    """Show one index: model, corpus, state, build parameters, and how it keeps and searches its
    vectors (its index settings, and the ANN index and recall its build measured).

    Example:  embedops index show scifact--minilm-v2--1a2b3c4d
    """
    rec = state(ctx).registry.indexes.get(index_id)
    if as_json:
        print_json(rec.to_dict())
        return
    s, ann = rec.settings, rec.metrics.get("integrity", {}).get("ann")
    t = make_table("field", "value", title=rec.index_id)
    for name, value in [("model", rec.model_ref), ("corpus", f"{rec.corpus} (version {s.corpus_version})"),
                        ("status", rec.status.value), ("documents", f"{rec.doc_count or 0:,}"),
                        ("table version", str(rec.table_version)), ("precision", s.precision),
                        ("dimensions", str(s.dim)), ("provider", s.provider or "-"),
                        ("vectors", f"{s.index.footprint}, {s.codec.bytes_per_document:,.0f} bytes a document"),
                        ("ann", f"{s.index.ann} from {s.index.ann_threshold:,} documents"),
                        ("ann built", f"{ann['type']}, recall@10 vs exact {ann['recall@10_vs_exact']:.3f}"
                                      if ann else "none (exact search)"),
                        ("search", f"nprobes {s.index.nprobes}, refine factor {s.index.refine_factor}"),
                        ("created", rec.created_at)]:
        t.add_row(name, value)
    out.print(t)


@index_app.command("retire")
@handle_errors
def index_retire(ctx: typer.Context, index_id: str = typer.Argument(...), reason: str = typer.Option(None, "--reason")):
    """Mark an index retired (never one an alias points at, nor production's rollback target).

    Example:  embedops index retire scifact--minilm-v1--1a2b3c4d --reason "superseded"
    """
    state(ctx).registry.retire(index_id, reason=reason)
    out.print(f"{index_id} retired")


@index_app.command("drop")
@handle_errors
def index_drop(ctx: typer.Context, index_id: str = typer.Argument(...), reason: str = typer.Option(None, "--reason")):
    """Delete a retired index's table and record.

    Example:  embedops index drop scifact--minilm-v1--1a2b3c4d
    """
    state(ctx).registry.drop(index_id, reason=reason)
    out.print(f"{index_id} dropped")


@app.command("search")
@handle_errors
def search(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="Query text."),
    k: int = typer.Option(10, "-k", min=1, max=1000, help="Number of hits (1-1000)."),
    alias: str = typer.Option("production", "--alias", "-a", help="Alias whose index answers."),
    index_id: Optional[str] = typer.Option(None, "--index", help="Search this index (or bridge: adapter id) instead of an alias's."),
    progressive: Optional[str] = typer.Option(None, "--progressive", help="With --index ADAPTER_ID: also search this index of the bridge's new model (being built or done), its documents in the new space."),
    as_json: bool = JsonOpt,
):
    """Search the index an alias points at with that index's own model.

    Example:  embedops search "how do I fail over postgres" -k 5
    Example:  embedops search "statins" --index adapter-1a2b3c4d5e6f --progressive NEW_INDEX_ID
    """
    if progressive:
        from embedops.app.bridges import progressive_search
        from embedops.registry import is_bridge_id

        if not is_bridge_id(index_id):
            raise UsageError("--progressive needs --index ADAPTER_ID (the bridge whose new model built that index)")
        result = progressive_search(state(ctx).registry, index_id, progressive, text, k)
    else:
        result = Searcher(state(ctx).registry).search(text, k, alias=alias, index_id=index_id, with_titles=True)
    if as_json:
        print_json(result.to_dict())
        return
    via = f" via a {result.bridge['kind']} adapter over {result.bridge['index_id']}" if result.bridge else ""
    if result.bridge and "new_share" in result.bridge:
        via += f", {result.bridge['new_share']:.0%} from {result.bridge['new_index']}"
    table = make_table("#", "score", "id", "title", title=f"{result.index_id} ({result.model_ref}{via}) "
                       f"{result.latency_ms:.1f} ms (+{result.open_ms:.0f} ms opening the index and model)")
    for n, h in enumerate(result.hits, 1):
        table.add_row(str(n), f"{h.score:.4f}", h.id, h.title)
    out.print(table)
