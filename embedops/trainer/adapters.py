"""Fitting query adapters (:mod:`embedops.encoding.adapter`) on documents embedded by both models.

Takes ``new`` (n, new_dim) and ``old`` (n, old_dim): the same n documents, as the new model embeds
them and as the old index stores them. A held-out share of the rows (``holdout``) is kept out of
the fit and measures it: the mean cosine between mapped and stored vectors, and how often a mapped
document's nearest stored vector (among the held-out ones) is its own (``top1_agreement``).

* ``procrustes``: the closed form of the orthogonal Procrustes problem
  (:func:`scipy.linalg.orthogonal_procrustes`, Schönemann 1966); needs equal dimensions.
* ``affine``: ridge regression with a bias (closed form, numpy), the ridge chosen on the held-out
  rows from a small grid.
* ``mlp``: a residual MLP (one hidden layer, 2x the width) around the Procrustes rotation, trained
  with torch (AdamW, cosine loss) for at most ``max_seconds``, keeping the epoch that scores best on
  the held-out rows; where the data cannot support it, that is the rotation itself.

The three are the maps Drift-Adapter (EMNLP 2025) compares. :func:`score_calibration` also puts
the bridge's scores on the new model's scale, for a progressive bridge that merges the two spaces.

>>> adapter, figures = fit_adapter(new_vectors, old_vectors, kind="procrustes")   # doctest: +SKIP
>>> figures["holdout_cosine"]                                                     # doctest: +SKIP
0.93
"""

from __future__ import annotations

import time

import numpy as np

from embedops.encoding.adapter import ADAPTER_KINDS, QueryAdapter
from embedops.errors import UsageError

MIN_ROWS = 50  # fewer documents than this cannot fit a map of hundreds of dimensions with evidence
RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _check(new: np.ndarray, old: np.ndarray, kind: str, holdout: float) -> None:
    if kind not in ADAPTER_KINDS:
        raise UsageError(f"unknown adapter kind {kind!r}; choose one of {', '.join(ADAPTER_KINDS)}")
    if new.ndim != 2 or old.ndim != 2 or len(new) != len(old):
        raise UsageError(f"an adapter fits paired rows: got {new.shape} new and {old.shape} old vectors")
    if not (np.isfinite(new).all() and np.isfinite(old).all()):
        raise UsageError("the vectors to fit an adapter on hold NaN or infinite values")
    if not 0.05 <= holdout <= 0.5:
        raise UsageError(f"holdout must be between 0.05 and 0.5, got {holdout}")
    if len(new) * (1 - holdout) < MIN_ROWS:
        raise UsageError(f"{len(new)} documents are too few to fit an adapter (at least "
                         f"{int(np.ceil(MIN_ROWS / (1 - holdout)))}): sample more with --sample")
    if kind in ("procrustes", "mlp") and new.shape[1] != old.shape[1]:
        raise UsageError(f"a {kind} adapter maps between equal dimensions, and these are {new.shape[1]} and "
                         f"{old.shape[1]}: use --kind affine")


def _procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.linalg import orthogonal_procrustes

    rotation, _ = orthogonal_procrustes(x, y)
    return rotation.astype(np.float32)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    w = np.linalg.solve(xc.T @ xc + alpha * len(x) * np.eye(x.shape[1]), xc.T @ yc)
    return w.astype(np.float32), (my - mx @ w).astype(np.float32)


def holdout_figures(adapter: QueryAdapter, new: np.ndarray, old: np.ndarray) -> dict[str, float]:
    """Mean cosine of mapped to stored vectors and top-1 agreement, on these rows."""
    mapped, stored = adapter.apply(new), _normalise(old.astype(np.float32))
    cosine = np.sum(mapped * stored, axis=1)
    top1 = np.argmax(mapped @ stored.T, axis=1) == np.arange(len(mapped))
    return {"holdout_cosine": float(cosine.mean()), "holdout_top1_agreement": float(top1.mean())}


def score_calibration(adapter: QueryAdapter, new: np.ndarray, old: np.ndarray, top: int = 20) -> dict[str, float]:
    """How to put a bridge's scores on the new model's scale: ``new ~ scale * bridge + shift``,
    matching the mean and spread of the scores at the top of rankings in each space, each document
    of these rows standing in for a query. In the new space a row's scores are the cosines of its
    new vector with the other rows' new vectors; through the bridge, of its mapped new vector with
    their stored vectors; each row's ``top`` best of each are pooled. Matching the two
    distributions (as metasearch normalises the scores of engines it merges) keeps ``scale``
    positive, so a merge never inverts a space's own order. What a progressive bridge merges the
    hits of the two spaces with (:class:`embedops.index.ProgressiveReader`)."""
    x, y = _normalise(np.asarray(new, np.float32)), _normalise(np.asarray(old, np.float32))
    s_new, s_bridge = x @ x.T, adapter.apply(x) @ y.T
    np.fill_diagonal(s_new, -np.inf)
    np.fill_diagonal(s_bridge, -np.inf)
    top = min(top, len(x) - 1)
    best_new = -np.sort(-s_new, axis=1)[:, :top].ravel()
    best_bridge = -np.sort(-s_bridge, axis=1)[:, :top].ravel()
    scale = float(best_new.std() / max(best_bridge.std(), 1e-6))
    shift = float(best_new.mean() - scale * best_bridge.mean())
    return {"scale": scale, "shift": shift, "scores": int(best_new.size), "new_mean": float(best_new.mean()),
            "bridge_mean": float(best_bridge.mean())}


def _mlp(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, rotation: np.ndarray, *, seed: int,
         max_seconds: float, epochs: int = 200) -> tuple[dict[str, np.ndarray], dict]:
    import torch

    torch.manual_seed(seed)
    d, hidden = x.shape[1], 2 * x.shape[1]
    first, second = torch.nn.Linear(d, hidden), torch.nn.Linear(hidden, y.shape[1])
    torch.nn.init.zeros_(second.weight)  # starts as the rotation itself
    torch.nn.init.zeros_(second.bias)
    rot = torch.from_numpy(rotation)
    params = list(first.parameters()) + list(second.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2)
    tx, ty, vx, vy = (torch.from_numpy(a.astype(np.float32)) for a in (x, y, xv, yv))

    def forward(inp):
        return torch.nn.functional.normalize(inp @ rot + second(torch.relu(first(inp))), dim=1)

    def weights():
        return {"R": rotation, "W1": first.weight.detach().T.numpy().copy(), "b1": first.bias.detach().numpy().copy(),
                "W2": second.weight.detach().T.numpy().copy(), "b2": second.bias.detach().numpy().copy()}

    with torch.no_grad():
        best, best_epoch, best_weights = float((forward(vx) * vy).sum(1).mean()), 0, weights()
    start, epoch = time.perf_counter(), 0
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        for idx in torch.randperm(len(tx), generator=gen).split(256):
            loss = 1 - (forward(tx[idx]) * ty[idx]).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            score = float((forward(vx) * vy).sum(1).mean())
        if score > best:
            best, best_epoch, best_weights = score, epoch, weights()
        if epoch - best_epoch >= 10 or time.perf_counter() - start > max_seconds:
            break
    return best_weights, {"epochs_run": epoch, "best_epoch": best_epoch, "hidden": hidden}


def fit_adapter(new: np.ndarray, old: np.ndarray, *, kind: str = "procrustes", holdout: float = 0.2, seed: int = 0,
                max_seconds: float = 120.0) -> tuple[QueryAdapter, dict]:
    """Fit an adapter mapping ``new`` rows onto ``old`` rows; returns it and its figures (fit
    seconds, held-out cosine and top-1 agreement, rows used, and the kind's own choices)."""
    new, old = np.asarray(new, dtype=np.float32), np.asarray(old, dtype=np.float32)
    _check(new, old, kind, holdout)
    started = time.perf_counter()
    order = np.random.default_rng(seed).permutation(len(new))
    n_val = max(1, int(round(holdout * len(new))))
    val, train = order[:n_val], order[n_val:]
    x, y = _normalise(new[train]), _normalise(old[train])
    xv, yv = _normalise(new[val]), _normalise(old[val])
    choices: dict = {}
    if kind == "procrustes":
        adapter = QueryAdapter("procrustes", {"R": _procrustes(x, y)})
    elif kind == "affine":
        fits = [(alpha, QueryAdapter("affine", dict(zip(("W", "b"), _ridge(x, y, alpha))))) for alpha in RIDGE_GRID]
        scores = [holdout_figures(a, xv, yv)["holdout_cosine"] for _, a in fits]
        alpha, adapter = fits[int(np.argmax(scores))]
        choices = {"ridge": alpha, "ridge_grid": list(RIDGE_GRID)}
    else:
        weights, choices = _mlp(x, y, xv, yv, _procrustes(x, y), seed=seed, max_seconds=max_seconds)
        adapter = QueryAdapter("mlp", weights)
    figures = {"kind": kind, "rows": len(new), "fit_rows": len(train), "holdout_rows": len(val), "seed": seed,
               "fit_seconds": round(time.perf_counter() - started, 3)} | holdout_figures(adapter, xv, yv) | choices
    figures["calibration"] = score_calibration(adapter, xv, yv)  # on held-out rows, as the figures above
    return adapter, figures
