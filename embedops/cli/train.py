"""embedops train"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from embedops.app.training import train_from_files
from embedops.cli._common import JsonOpt, app, err, handle_errors, print_json, state
from embedops.errors import UsageError
from embedops.trainer.config import FEW_DEV_QUERIES
from embedops.trainer.replay import NO_GENERAL_PAIRS
from embedops.trainer.train import TrainConfig


_DEFAULTS = TrainConfig()


@app.command("train")
@handle_errors
def train_cmd(
    ctx: typer.Context,
    base: str = typer.Option(..., "--base", help="Model version to fine-tune, NAME@N."),
    pairs_path: Path = typer.Option(..., "--pairs", help="Pairs JSONL (mined negatives used when present)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Corpus for {query, doc_id} lines."),
    general: Optional[Path] = typer.Option(None, "--general", help="General pairs JSONL mixed in (replay)."),
    replay: str = typer.Option("auto", "--replay", help="Share of the training pairs drawn from --general, in [0, 1), or auto: where the general rails hold alpha back at the best probe, dev chooses between none and 0.2 (at the alphas each is allowed)."),
    general_eval: Optional[Path] = typer.Option(None, "--general-eval", help="STS TSV (sentence1, sentence2, score) to watch forgetting (default: the general set bundled with embedops, 132 pairs)."),
    general_retrieval: str = typer.Option(_DEFAULTS.general_retrieval, "--general-retrieval", help="BEIR directory whose nDCG@10 alpha must also keep within --max-general-drop judged by the 95% upper bound of its per-query drop (default: bundled:general-definitions, 965 everyday words over WordNet definitions; 'none' turns it off)."),
    interpolate: str = typer.Option("auto", "--interpolate", help="auto (sweep alpha: the best domain score among the alphas whose general scores stay within --max-general-drop of the base's; see --alpha-rule), an alpha in (0, 1] (WiSE-FT with the base), or none."),
    alpha_rule: str = typer.Option(_DEFAULTS.alpha_rule, "--alpha-rule", help="auto: best (the best dev score among the allowed alphas) or one-se (the alpha nearest the base within one standard error of it)."),
    max_general_drop: float = typer.Option(_DEFAULTS.max_general_drop, "--max-general-drop", help="auto: allowed drop of the general score, points."),
    domain_dev: Optional[Path] = typer.Option(None, "--domain-dev", help="BEIR directory with a few labelled queries: scores the domain (alpha choice) instead of held-out pairs. Recommended with generated pairs."),
    domain_dev_split: str = typer.Option("dev", "--domain-dev-split", help="Qrels split of --domain-dev."),
    eval_fraction: float = typer.Option(_DEFAULTS.eval_fraction, "--eval-fraction", help="Share of the queries held out (not trained on) to score the domain; 0 trains on all (then auto needs --domain-dev)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epoch limit of the search on dev (default 3); with --lr too, the fixed count trained as given."),
    batch_size: int = typer.Option(_DEFAULTS.batch_size, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default: the best of 2e-5, 5e-5 and 1e-4 on dev); with --epochs too, trained as given."),
    budget: float = typer.Option(_DEFAULTS.budget_minutes, "--budget", help="Minutes the search on dev may spend training and scoring (the alpha sweep comes after)."),
    patience: int = typer.Option(_DEFAULTS.patience, "--patience", help="Dev evaluations (two an epoch) without a better score before a run stops; 0 never stops early."),
    loss: str = typer.Option("auto", "--loss", help="auto (cached-mnrl when a step exceeds 8,192 tokens: same objective, bounded memory), mnrl, cached-mnrl, cached-gist (base model as guide), or a plug-in's name."),
    mini_batch_size: int = typer.Option(_DEFAULTS.mini_batch_size, "--mini-batch-size", help="cached-mnrl: texts embedded at a time (memory, not what is learned)."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the new version (default: the base's name)."),
    devices: int = typer.Option(1, "--devices", help="Processes for distributed data-parallel training (one per GPU; gloo on CPU). --batch-size is per device; negatives are gathered across devices."),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="auto (bf16/fp16 on a GPU; bf16 on a CPU with AVX512-BF16 or AMX, detected; fp32 elsewhere), bf16, fp16 (GPU) or fp32."),
    max_seq_length: int = typer.Option(_DEFAULTS.max_seq_length, "--max-seq-length", help="Token limit while training, at most the model's own (all-MiniLM-L6-v2 was trained at 128; on a 2-core CPU a step on SciFact abstracts costs a third of one at 256). The new version keeps the model's limit for encoding."),
    matryoshka_dims: str = typer.Option("", "--matryoshka-dims", help="Also train the embedding cut to these leading dimensions, largest first (e.g. 384,256,128,64: MatryoshkaLoss); the version records them."),
    top_up: str = typer.Option(_DEFAULTS.top_up, "--top-up", help="Pairs short of mined negatives: random (topped up with other pairs' positives), drop (left out), or auto (random; when over a quarter of the pairs are short, dev chooses between the two)."),
    margin: str = typer.Option("auto", "--margin", help="Filter the mined candidates again at this margin (within the range `pairs mine` kept, 0.95 to its --try-margin 1.0 by default), or auto: as mined, and where the looser margin gives over a quarter of the pairs, short of negatives at the mined one, more of them, dev chooses between the two."),
    save_steps: Optional[int] = typer.Option(None, "--save-steps", help="Checkpoint every N steps (default: each epoch's end). Rerunning the same command resumes from the last checkpoint."),
    as_json: bool = JsonOpt,
):
    """Fine-tune a model version with contrastive loss and register the result as NAME@N.

    With no flags the recipe is chosen on your data: a tenth of the queries is held out (or
    --domain-dev scores), each learning rate of 2e-5, 5e-5 and 1e-4 trains a one-epoch probe, the
    best goes on with early stopping (dev nDCG@10 twice an epoch) up to 3 epochs, all within
    --budget minutes; the weights of the best dev score are kept. Then WiSE-FT alpha is chosen on
    the same queries while both general rails (bundled STS and retrieval sets) stay within 1 point
    of the base (the retrieval rail by the 95% upper bound of its drop): the best dev score among
    those alphas. The report shows each trial, the dev curve and why it stopped. With generated pairs
    only and no --domain-dev, alpha is at most 0.6: generated held-out queries always prefer no
    interpolation.
    With nothing held out: 2 epochs at 5e-5 (1 at 2e-5 for generated pairs).

    Example:  embedops train --base minilm@1 --pairs mined.jsonl
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --general-eval sts-dev.tsv --seed 1
    Example:  embedops train --base minilm@1 --pairs generated-mined.jsonl --domain-dev my-dev-beir/
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --devices 4 --batch-size 64
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --save-steps 100   # resumable
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --budget 60 --lr 5e-5
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --matryoshka-dims 384,256,128,64
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --top-up drop
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --margin 1.0
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --general general-pairs.jsonl
    """
    try:
        dims = tuple(int(d) for d in matryoshka_dims.split(",") if d.strip()) or None
    except ValueError:
        raise UsageError(f"--matryoshka-dims takes whole numbers separated by commas, got {matryoshka_dims!r}") from None
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, loss=loss, mini_batch_size=mini_batch_size, seed=seed,
                         replay_fraction=replay, interpolate=interpolate,
                         max_general_drop=max_general_drop, alpha_rule=alpha_rule, devices=devices, eval_fraction=eval_fraction,
                         domain_dev=str(domain_dev) if domain_dev else None, domain_dev_split=domain_dev_split,
                         mixed_precision=mixed_precision, max_seq_length=max_seq_length, save_steps=save_steps,
                         budget_minutes=budget, patience=patience, general_retrieval=general_retrieval,
                         matryoshka_dims=dims, top_up=top_up, margin=margin)
    with err.status(f"training {base} ...") as status:
        result = train_from_files(
            state(ctx).registry, base, pairs_path, corpus=corpus, general=general, general_eval=general_eval,
            name=name, config=config, on_start=lambda n: status.update(f"training {base} on {n} pairs ..."),
            on_log=lambda p: status.update(f"training: lr {p.get('lr', 0):g} step {p['step']} epoch {p['epoch']} "
                                           f"loss {p['loss']:.4f}"))
    if as_json:
        print_json({"ref": result.model.ref, "alpha": result.alpha, "metrics": result.metrics})
        return
    for line in describe_training(result.metrics):
        err.print(line, soft_wrap=False)
    typer.echo(result.model.ref)


def _points(value: float | None) -> str | None:
    return None if value is None or math.isnan(value) else f"{value:.2f}"


def _change(label: str, before: float | None, after: float | None, absent: str) -> str:
    b, a = _points(before), _points(after)
    if b is None and a is None:
        return f"{label}: not measured ({absent})"
    if b is None or a is None:
        return f"{label}: {b or 'not measured'} -> {a or 'not measured'}"
    return f"{label}: {b} -> {a} ({after - before:+.2f})"


def _recipe_line(m: dict) -> str:
    r = m.get("recipe", {})
    epochs = f"{r.get('epochs')} epoch{'' if r.get('epochs') == 1 else 's'}"
    limit = "up to " if (m.get("recipe_search") or {}).get("trials") else ""
    return (f"recipe ({r.get('rule')}): lr {r.get('lr'):g}, {r.get('steps')} steps of {r.get('batch_size')} pairs, "
            f"{limit}{epochs} ({m.get('train_pairs')} trained, {m.get('held_out_pairs')} held out), "
            f"{r.get('negatives_per_pair')} mined negatives, {r.get('train_tokens')} tokens, "
            f"{r.get('precision')}, loss {r.get('loss')}")


def describe_search(m: dict) -> list[str]:
    """The search on dev in lines: each trial (lr, steps, best dev score, why it stopped) and the
    dev curve of the rate kept."""
    search = m.get("recipe_search")
    if not search or not search.get("trials"):
        return []
    r = m["recipe"]
    used = sum(t["seconds"] for t in search["trials"]) / 60
    lines = [f"search on dev ({used:.1f} of {r.get('budget_minutes'):g} budget minutes): {search['reason']}"]
    def probe(t: dict) -> tuple[float, str]:  # the negatives rule; versions from before the top-up rule used "random"
        return t["lr"], t.get("top_up", "random")

    several = len({probe(t)[1] for t in search["trials"]}) > 1
    for t in search["trials"]:
        best = t["best"] or {}
        rule = f" {probe(t)[1]:<6}" if several else ""
        lines.append(f" {'*' if probe(t) == probe(search) else ' '} lr {t['lr']:<7g}{rule} {t['steps']:>5} steps  "
                     f"best dev nDCG@10 {best.get('domain_ndcg@10', float('nan')):6.2f} at step {best.get('step')}  "
                     f"({t['stopped']})")
    kept = next(t for t in search["trials"] if probe(t) == probe(search))
    curve = ", ".join(f"{p['step']}: {p['domain_ndcg@10']:.2f}" for p in kept["dev"])
    which = f"lr {kept['lr']:g}" + (f", top-up {probe(kept)[1]}" if several else "")
    lines.append(f"dev curve of {which} (step: nDCG@10): {curve}")
    return lines


def describe_top_up(m: dict) -> list[str]:
    """What filled the pairs short of mined negatives, and why (none when no pair was short)."""
    r = m.get("recipe", {})
    if not m.get("pairs_short_of_negatives") and not m.get("pairs_padded_with_random_negatives"):
        return []
    lines, fewer = [], f"fewer than {m.get('negatives_per_pair')} mined negatives"
    if m.get("pairs_dropped_short_of_negatives"):
        lines.append(f"{m['pairs_dropped_short_of_negatives']} pairs had {fewer} and were left out of training "
                     "(top-up: drop)")
    if m.get("pairs_padded_with_random_negatives"):
        lines.append(f"{m['pairs_padded_with_random_negatives']} pairs had {fewer} and were topped up with other "
                     "pairs' positives")
    if r.get("top_up_rule"):
        lines.append(f"top-up rule: {r['top_up_rule']}")
    return lines


def describe_margin(m: dict) -> list[str]:
    """The mining margin the kept trial's negatives were filtered at, and why (none for pairs mined
    without candidates for another margin)."""
    r = m.get("recipe", {})
    if r.get("margin") is None:  # pairs from an older `pairs mine`, or written by hand
        return []
    return [f"mining margin {r['margin']:g}: {r['margin_rule']}"]


def describe_replay(m: dict) -> list[str]:
    """The share of general pairs replayed, and why (none for a run without general pairs)."""
    r = m.get("recipe", {})
    if not r.get("replay_rule") or r["replay_rule"].startswith(NO_GENERAL_PAIRS):
        return []
    share = r.get("replay_fraction") or 0
    what = f"{share:g} ({r.get('replayed_pairs')} general pairs)" if share else "none"
    return [f"replay {what}: {r['replay_rule']}"]


def describe_alpha_sweep(m: dict) -> list[str]:
    """Each alpha the sweep scored: its dev score, its general scores where they were measured, and
    whether they kept within the limit (``*`` marks the alpha kept). None with one alpha or none."""
    sweep = m.get("alpha_sweep") or []
    if len(sweep) < 2:
        return []
    lines = [f"alpha sweep (dev nDCG@10 on {m.get('domain_scorer') or 'the domain set'}; general scores):"]
    for p in sweep:
        general = [f"{label} {p[key]:.2f}" for key, label in (("general_spearman", "Spearman"),
                                                             ("general_retrieval_ndcg@10", "nDCG@10"))
                   if p.get(key) is not None]
        verdict = {True: "within the limit", False: "beyond the limit", None: "not scored"}[p.get("allowed")]
        lines.append(f" {'*' if p['alpha'] == m.get('alpha') else ' '} {p['alpha']:<4g} "
                     f"{p.get('domain_ndcg@10', float('nan')):6.2f}  "
                     + (f"{', '.join(general)}: {verdict}" if general else f"general {verdict}"))
    return lines


def describe_training(m: dict) -> list[str]:
    """What a training run did, in lines a user can check (``embedops train``'s report)."""
    lines = [_recipe_line(m), *describe_search(m), *describe_top_up(m), *describe_margin(m), *describe_replay(m)]
    b, a = m["before"], m["after"]
    lines.append(_change(f"domain nDCG@10 on {m.get('domain_scorer') or 'no domain set'}", b["domain_ndcg@10"],
                         a["domain_ndcg@10"], "no held-out queries and no --domain-dev"))
    if 0 < m.get("dev_queries", FEW_DEV_QUERIES) < FEW_DEV_QUERIES:
        lines.append(f"  only {m['dev_queries']} dev quer{'y' if m['dev_queries'] == 1 else 'ies'}: what was chosen on "
                     "them is noise; --domain-dev with more labelled queries, or a larger --eval-fraction, fixes it")
    lines.append(_change(f"general Spearman on {m.get('general_eval')}", b["general_spearman"], a["general_spearman"],
                         "no general set"))
    if "general_retrieval_ndcg@10" in b:
        lines.append(_change(f"general nDCG@10 on {m.get('general_retrieval')}", b["general_retrieval_ndcg@10"],
                             a.get("general_retrieval_ndcg@10"), "no general retrieval set"))
        chosen = next((p for p in m.get("alpha_sweep") or [] if p["alpha"] == m.get("alpha")), {})
        if "general_retrieval_ndcg@10_drop_upper95" in chosen:
            lines.append(f"  its drop is at most {chosen['general_retrieval_ndcg@10_drop_upper95']:.2f} "
                         "(upper end of the one-sided 95% interval, query by query)")
    lines += describe_alpha_sweep(m)
    if m.get("alpha_reason"):
        lines.append(f"alpha {m['alpha']:g}: {m['alpha_reason']}")
    elif m.get("alpha") is not None:
        lines.append(f"alpha {m['alpha']:g}: given with --interpolate")
    else:
        lines.append("no interpolation (--interpolate none): the tuned weights as trained")
    return lines
