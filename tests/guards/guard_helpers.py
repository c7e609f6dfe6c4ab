"""Helpers for guard tests."""

import shutil
from pathlib import Path

import tempfile

from helpers import bundled_model_path
from embedops.app.example_runbooks import write_runbooks

# The project's own 20-runbook example, written once per test session.
RUNBOOKS = write_runbooks(Path(tempfile.mkdtemp(prefix="embedops-runbooks-")) / "runbooks")


def damaged_copy(dest: Path, noise: float = 0.6, seed: int = 0) -> Path:
    """The bundled MiniLM with every weight matrix perturbed by Gaussian noise (a broken model)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(bundled_model_path(), dest)
    weights = load_file(str(dest / "model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    damaged = {k: (v + noise * v.std() * torch.randn(v.shape, generator=g)) if v.ndim == 2 and v.is_floating_point() else v
               for k, v in weights.items()}
    save_file(damaged, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


def small_gold(**settings):
    """A policy for the 10-query runbooks gold set and the demo's 24 STS pairs: the evidence minimums
    lowered to fit them (the defaults, 50 gold queries and 20-query slices, are tested on their own)."""
    from embedops.guards import Policy

    return Policy(**({"min_gold_queries": 10, "min_slice_queries": 5, "bootstrap_resamples": 2000} | settings))


SMALL_GOLD_TOML = "[guards]\nmin_gold_queries = 10\nmin_slice_queries = 5\n"


FILLER_WORDS = ("ledger invoice tariff orchard glacier violin harbour meadow lantern quarry falcon tundra pottery "
                "saffron canyon mosaic beacon walnut compass velvet thistle marble cobalt heron juniper").split()


def runbooks_in_minilm_production(root: Path):
    """A store under ``root`` with the 20 runbooks among 430 filler notes (corpus ``runbooks``), the
    bundled MiniLM as minilm@1 and its float32 index in production: (registry, that index)."""
    import json
    import random

    from embedops.reembed import IndexBuild
    from embedops.registry import Registry
    from embedops.store import Store

    rng = random.Random(0)
    rows = [json.loads(line) for line in (RUNBOOKS / "corpus.jsonl").read_text().splitlines()]
    rows += [{"_id": f"f{i}", "title": "", "text": " ".join(rng.choices(FILLER_WORDS, k=9))} for i in range(430)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    reg = Registry(Store.open(str(root / "store")))
    reg.corpora.add("runbooks", root / "corpus.jsonl")
    reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    base = IndexBuild(reg, "minilm@1", "runbooks").run().index
    reg.promote(base.index_id, reason="baseline", override=True)
    return reg, base
