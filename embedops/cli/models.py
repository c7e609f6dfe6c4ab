"""embedops model register | list | show | verify | export-onnx | export"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

import typer

from embedops.cli._common import (
    JsonOpt,
    QuietOpt,
    err,
    group,
    handle_errors,
    make_table,
    out,
    print_json,
    print_records,
    state,
    when,
)
from embedops.errors import UsageError
from embedops.registry import ensure_export

model_app = group("Model versions.\n\nExample:  embedops model register minilm ./all-MiniLM-L6-v2")

def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


@model_app.command("register")
@handle_errors
def model_register(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name; versions count up per name."),
    path: str = typer.Argument(..., help="A sentence-transformers model directory (safetensors weights), or bundled:all-MiniLM-L6-v2."),
    parent: Optional[str] = typer.Option(None, "--parent", help="Reference of the model this one derives from."),
    param: list[str] = typer.Option([], "--param", help="KEY=VALUE recorded with the version (repeatable)."),
    notes: str = typer.Option("", "--notes", help="Free text kept with the version."),
    as_json: bool = JsonOpt,
):
    """Copy a model directory into the store and print its reference NAME@N.

    Only safetensors weights are copied (pickle files are never loaded); models that need custom
    code are refused. Every file's sha256 is recorded and re-checked on each load.

    Example:  embedops model register minilm bundled:all-MiniLM-L6-v2 --notes "base model"
    """
    with err.status(f"copying and hashing {path} ..."):
        mv = state(ctx).registry.models.register(name, path, parent=parent, params=_parse_params(param), notes=notes)
    if as_json:
        print_json(mv.to_dict())
        return
    typer.echo(mv.ref)


@model_app.command("list")
@handle_errors
def model_list(ctx: typer.Context, as_json: bool = JsonOpt, quiet: bool = QuietOpt):
    """List model versions.

    Example:  embedops model list
    """
    print_records(state(ctx).registry.models.list(), as_json, ("ref", "parent", "created", "creator", "files", "digest"),
                  lambda m: [m.ref, m.parent or "-", when(m.created_at), m.creator, str(len(m.files)), m.digest[:12]],
                  title="Model versions", empty="no models yet: embedops model register NAME PATH", quiet=quiet)


@model_app.command("show")
@handle_errors
def model_show(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME@N, NAME or NAME@latest."), as_json: bool = JsonOpt):
    """Show one model version: lineage, params, metrics and file checksums.

    Example:  embedops model show minilm@1
    """
    m = state(ctx).registry.models.get(ref)
    if as_json:
        print_json(m.to_dict())
        return
    table = make_table(show_header=False, title=m.ref)
    for key in ("parent", "created_at", "creator", "digest", "artifact", "notes"):
        table.add_row(key, str(getattr(m, key) or "-"))
    table.add_row("params", json.dumps(m.params, sort_keys=True))
    table.add_row("metrics", json.dumps(m.metrics, sort_keys=True))
    for f in m.files:
        table.add_row(f"file {f.path}", f"{f.sha256}  {f.size} B")
    out.print(table)


@model_app.command("verify")
@handle_errors
def model_verify(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME@N to check."), as_json: bool = JsonOpt):
    """Re-check every file's sha256; exit 1 naming any changed, missing or extra file.

    Example:  embedops model verify minilm@1
    """
    reg = state(ctx).registry
    m = reg.models.get(ref)
    problems = reg.models.verify(m.ref)
    if as_json:
        print_json({"ref": m.ref, "ok": not problems, "problems": problems})
    elif problems:
        err.print(f"[bold red]{m.ref}: checksum verification FAILED[/]")
        for p in problems:
            err.print(f"  - {p}")
    else:
        out.print(f"{m.ref}: all {len(m.files)} files match their sha256 checksums")
    if problems:
        raise typer.Exit(1)


@model_app.command("export-onnx")
@handle_errors
def model_export_onnx(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model version, NAME@N."),
    precision: str = typer.Option("fp32", "--precision", "-p", help="fp32 (CPU default), bf16 (CPUs with AVX512-BF16 or AMX), fp16 (GPU) or int8 (CPU)."),
    as_json: bool = JsonOpt,
):
    """Export a model version to ONNX (pooling and normalisation in the graph), check parity with
    sentence-transformers and store it, checksummed, with the model version.

    Example:  embedops model export-onnx minilm@1 --precision int8
    """
    with err.status(f"exporting {ref} to ONNX ({precision}) ..."):
        record, _ = ensure_export(state(ctx).registry, ref, precision)
    if as_json:
        print_json(record.to_dict())
        return
    parity = record.meta.get("parity", {})
    out.print(f"{record.model_ref} [{record.kind}] digest {record.digest[:12]}: parity mean cosine "
              f"{parity.get('mean_cosine', float('nan')):.5f}, min {parity.get('min_cosine', float('nan')):.5f}")


@model_app.command("export")
@handle_errors
def model_export(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model version, NAME@N."),
    dest: Path = typer.Argument(..., help="Directory to write (must not exist)."),
):
    """Write a model version out as a plain sentence-transformers directory (checksums verified).

    Example:  embedops model export minilm@2 ./minilm-scifact
    """
    if dest.exists():
        raise UsageError(f"{dest} already exists; choose a new directory")
    src = state(ctx).registry.models.verified_path(ref)
    shutil.copytree(src, dest)
    out.print(f"{ref} -> {dest}")
