"""embedops train"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from embedops.app.training import train_from_files
from embedops.cli._common import JsonOpt, app, err, handle_errors, print_json, state
from embedops.trainer.train import TrainConfig


@app.command("train")
@handle_errors
def train_cmd(
    ctx: typer.Context,
    base: str = typer.Option(..., "--base", help="Model version to fine-tune, NAME@N."),
    pairs_path: Path = typer.Option(..., "--pairs", help="Pairs JSONL (mined negatives used when present)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Corpus for {query, doc_id} lines."),
    general: Optional[Path] = typer.Option(None, "--general", help="General pairs JSONL mixed in (replay)."),
    replay: float = typer.Option(0.2, "--replay", help="Fraction of each batch from --general."),
    general_eval: Optional[Path] = typer.Option(None, "--general-eval", help="STS TSV (sentence1, sentence2, score) to watch forgetting."),
    interpolate: Optional[str] = typer.Option(None, "--interpolate", help="auto, or an alpha in (0, 1] (WiSE-FT with the base)."),
    max_general_drop: float = typer.Option(1.0, "--max-general-drop", help="auto: allowed drop of the general score, points."),
    domain_dev: Optional[Path] = typer.Option(None, "--domain-dev", help="BEIR directory with a few labelled queries: scores the domain (alpha choice) instead of held-out pairs. Recommended with generated pairs."),
    domain_dev_split: str = typer.Option("dev", "--domain-dev-split", help="Qrels split of --domain-dev."),
    epochs: int = typer.Option(1, "--epochs"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(2e-5, "--lr"),
    loss: str = typer.Option("auto", "--loss", help="auto (cached-mnrl when a step exceeds 8,192 tokens: same objective, bounded memory), mnrl or cached-mnrl."),
    mini_batch_size: int = typer.Option(16, "--mini-batch-size", help="cached-mnrl: texts embedded at a time (memory, not what is learned)."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the new version (default: the base's name)."),
    devices: int = typer.Option(1, "--devices", help="Processes for distributed data-parallel training (one per GPU; gloo on CPU). --batch-size is per device; negatives are gathered across devices."),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="auto (bf16/fp16 on a GPU, fp32 on a CPU), bf16 (also on a CPU with AVX512-BF16 or AMX: faster), fp16 (GPU) or fp32."),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help="Token limit while training (default: the model's own). 128 makes steps on long documents much cheaper (SciFact abstracts, 2-core CPU, bf16: 3.1x faster per step than at 256); the new version keeps the model's limit for encoding."),
    save_steps: Optional[int] = typer.Option(None, "--save-steps", help="Checkpoint every N steps (default: each epoch's end). Rerunning the same command resumes from the last checkpoint."),
    as_json: bool = JsonOpt,
):
    """Fine-tune a model version with contrastive loss and register the result as NAME@N.

    Example:  embedops train --base minilm@1 --pairs mined.jsonl --epochs 3 --general-eval sts-dev.tsv --interpolate auto
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --devices 4 --batch-size 64
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --mixed-precision bf16   # a CPU with AVX512-BF16
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --max-seq-length 128 --save-steps 100   # long CPU run
    Example:  embedops train --base minilm@1 --pairs generated-mined.jsonl --general-eval sts-dev.tsv --interpolate auto --domain-dev my-dev-beir/
    """
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, loss=loss, mini_batch_size=mini_batch_size, seed=seed,
                         replay_fraction=replay if general else 0.0, interpolate=interpolate,
                         max_general_drop=max_general_drop, devices=devices,
                         domain_dev=str(domain_dev) if domain_dev else None, domain_dev_split=domain_dev_split,
                         mixed_precision=mixed_precision, max_seq_length=max_seq_length, save_steps=save_steps)
    with err.status(f"training {base} ...") as status:
        result = train_from_files(
            state(ctx).registry, base, pairs_path, corpus=corpus, general=general, general_eval=general_eval,
            name=name, config=config, on_start=lambda n: status.update(f"training {base} on {n} pairs ..."),
            on_log=lambda p: status.update(f"training: step {p['step']} epoch {p['epoch']} loss {p['loss']:.4f}"))
    if as_json:
        print_json({"ref": result.model.ref, "alpha": result.alpha, "metrics": result.metrics})
        return
    b, a = result.metrics["before"], result.metrics["after"]
    err.print(f"{'dev' if domain_dev else 'held-out'} nDCG@10 {b['domain_ndcg@10']:.2f} -> {a['domain_ndcg@10']:.2f}; general Spearman "
              f"{b['general_spearman']:.2f} -> {a['general_spearman']:.2f}"
              + (f"; alpha {result.alpha}" if result.alpha is not None else ""))
    typer.echo(result.model.ref)
