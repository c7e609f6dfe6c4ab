"""embedops adapter fit | list"""

from __future__ import annotations

import time
from typing import Optional

import typer

from embedops.cli._common import JsonOpt, QuietOpt, err, group, handle_errors, print_json, print_records, progress_bar, state, when

adapter_app = group("Query adapters: a new model's queries searching an old model's index.\n\n"
                    "Example:  embedops adapter fit minilm-ft@1 --index scifact--minilm-v1--707bb951")


@adapter_app.command("fit")
@handle_errors
def adapter_fit(
    ctx: typer.Context,
    model_ref: str = typer.Argument(..., help="The new model version, NAME@N, whose queries the adapter maps."),
    index: str = typer.Option(..., "--index", "-i", help="The old index (built by another model) to map them into."),
    kind: str = typer.Option("procrustes", "--kind", help="procrustes (a rotation, closed form), affine (ridge regression) or mlp (a residual MLP, trained for at most --max-seconds)."),
    sample: int = typer.Option(2000, "--sample", min=1, help="Documents of the old index embedded by the new model to fit on (a fifth is held out to measure the fit)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the document sample and of the MLP."),
    max_seconds: float = typer.Option(120.0, "--max-seconds", min=1.0, help="Training time the mlp kind may take."),
    as_json: bool = JsonOpt,
):
    """Fit a query adapter from a new model version into an old index's embedding space and store
    it, checksummed, with its lineage; print its id.

    The old index's stored vectors of --sample documents are paired with the new model's vectors of
    the same texts; the adapter is fitted on four fifths of them and measured on the rest (mean
    cosine, top-1 agreement). The index is not changed. The id printed names a bridge: guard,
    promote, canary start and search take it wherever they take an index id.

    Example:  embedops adapter fit minilm-ft@1 --index scifact--minilm-v1--707bb951 --kind affine
    """
    from embedops.app.bridges import fit_bridge_adapter

    with progress_bar() as bar:
        task = bar.add_task(f"embedding a sample with {model_ref}", total=None, rate="-")
        started = time.perf_counter()

        def on_progress(done, total):
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        rec = fit_bridge_adapter(state(ctx).registry, model_ref, index, kind=kind, sample=sample, seed=seed,
                                 max_seconds=max_seconds, progress=on_progress)
    if as_json:
        print_json(rec.to_dict())
        return
    fit = rec.meta["fit"]
    registry = state(ctx).registry
    old_ref = rec.meta["index_model_ref"]
    if registry.lineage_root(rec.model_ref) != registry.lineage_root(old_ref):
        err.print(f"note: {rec.model_ref} is not a version of {old_ref}'s lineage; a bridge between model "
                  "families lost 11.6 nDCG@10 points on SciFact (docs/CONCEPTS.md, Bridges): guard it")
    err.print(f"fitted a {rec.kind} adapter on {fit['fit_rows']} documents in {fit['fit_seconds']:.1f} s; on "
              f"{fit['holdout_rows']} held out: mean cosine {fit['holdout_cosine']:.4f}, top-1 agreement "
              f"{fit['holdout_top1_agreement']:.1%}")
    typer.echo(rec.adapter_id)


@adapter_app.command("list")
@handle_errors
def adapter_list(ctx: typer.Context, model_ref: Optional[str] = typer.Option(None, "--model", help="Only this model version's adapters."),
                 as_json: bool = JsonOpt, quiet: bool = QuietOpt):
    """List stored adapters, newest first: the model whose queries each maps, the index it maps
    into, its kind and its held-out fit.

    Example:  embedops adapter list --model minilm-ft@1
    """
    print_records(state(ctx).registry.adapters.list(model_ref), as_json,
                  ("adapter", "model", "index", "kind", "cosine", "created"),
                  lambda a: [a.adapter_id, a.model_ref, a.index_id, a.kind,
                             f"{a.meta.get('fit', {}).get('holdout_cosine', float('nan')):.4f}", when(a.artifact.created_at)],
                  title="Query adapters", empty="no adapters yet: embedops adapter fit MODEL --index INDEX_ID",
                  quiet=quiet)
