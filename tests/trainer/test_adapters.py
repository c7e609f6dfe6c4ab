"""Fitting query adapters: each kind recovers a map it can express, and thin or broken data is refused."""

import numpy as np
import pytest

from embedops.errors import UsageError
from embedops.trainer.adapters import fit_adapter


def _pairs(n=300, dim=16, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    new = rng.standard_normal((n, dim)).astype(np.float32)
    old = new @ q + noise * rng.standard_normal((n, dim))
    return new, old.astype(np.float32)


def test_procrustes_recovers_a_rotation_in_closed_form_and_reports_held_out_figures():
    new, old = _pairs()
    adapter, figures = fit_adapter(new, old, kind="procrustes")
    assert figures["holdout_cosine"] > 0.9999 and figures["holdout_top1_agreement"] == 1.0
    assert (figures["fit_rows"], figures["holdout_rows"]) == (240, 60)
    r = adapter.weights["R"]
    assert np.allclose(r.T @ r, np.eye(16), atol=1e-4)  # orthogonal


def test_affine_maps_between_dimensions_and_procrustes_says_to_use_it():
    rng = np.random.default_rng(0)
    new = rng.standard_normal((300, 12)).astype(np.float32)
    old = new @ rng.standard_normal((12, 8)).astype(np.float32)
    adapter, figures = fit_adapter(new, old, kind="affine")
    assert adapter.out_dim == 8 and figures["holdout_cosine"] > 0.99 and figures["ridge"] in figures["ridge_grid"]
    with pytest.raises(UsageError, match="12 and 8: use --kind affine"):
        fit_adapter(new, old, kind="procrustes")


def test_the_mlp_starts_from_the_rotation_and_does_no_worse_on_held_out_rows():
    new, old = _pairs(noise=0.3)
    old = np.tanh(old)  # a map a rotation cannot express exactly
    _, rotation = fit_adapter(new, old, kind="procrustes")
    adapter, figures = fit_adapter(new, old, kind="mlp", max_seconds=20)
    assert figures["holdout_cosine"] >= rotation["holdout_cosine"] - 1e-6
    assert figures["best_epoch"] <= figures["epochs_run"] and set(adapter.weights) == {"R", "W1", "b1", "W2", "b2"}


def test_thin_or_broken_evidence_is_refused_not_fitted():
    new, old = _pairs(n=40)
    with pytest.raises(UsageError, match="40 documents are too few to fit an adapter"):
        fit_adapter(new, old)
    new, old = _pairs()
    old[3, 2] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        fit_adapter(new, old)
    with pytest.raises(UsageError, match="paired rows"):
        fit_adapter(new[:10], old)


def test_the_score_calibration_puts_bridge_scores_on_the_new_scale():
    new, old = _pairs()
    _, exact = fit_adapter(new, old, kind="procrustes")  # a rotation recovered: the two scales agree
    cal = exact["calibration"]
    assert cal["scale"] == pytest.approx(1.0, abs=1e-3) and cal["shift"] == pytest.approx(0.0, abs=1e-3)
    assert cal["scores"] == 60 * 20 and cal["new_mean"] == pytest.approx(cal["bridge_mean"], abs=1e-4)
    from embedops.trainer.adapters import score_calibration

    adapter, _ = fit_adapter(new, old, kind="procrustes")
    squeezed = score_calibration(adapter, new, 3 * old)  # stored vectors of another norm: cosines unchanged
    assert squeezed["scale"] == pytest.approx(cal["scale"], abs=1e-3)
    for noise in (0.3, 1.0, 3.0):  # however poor the bridge, its scores keep their order
        noisy = score_calibration(adapter, new, old + np.random.default_rng(1).standard_normal(old.shape) * noise)
        assert noisy["scale"] > 0 and np.isfinite(noisy["shift"])
