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
