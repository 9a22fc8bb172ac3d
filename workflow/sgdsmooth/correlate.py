"""Does δ predict accuracy better than sharpness? Rank correlations with bootstrap
intervals, and a concave (quadratic) fit of accuracy against log δ.

A *cell* is one configuration (:data:`CELL`: optimizer, learning rate, β, batch size); its
runs are its seeds. They share the cell's δ and most of their outcome, so they are not
independent draws: every bootstrap here and in the claims ledger resamples cells with
replacement and the seeds within each drawn cell (:func:`cell_resample`), never rows as if
independent, which would understate the uncertainty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

METHODS = {"spearman": stats.spearmanr, "kendall": stats.kendalltau}
CELL = ("optimizer", "lr", "beta", "batch_size")  # one configuration; its rows are its seeds


def cell_labels(df: pd.DataFrame, keys=CELL) -> np.ndarray:
    """Each row's cell as one label, for :func:`cell_resample`. ``keys`` may be fewer than
    :data:`CELL` where the rest are constant (one η: optimizer × b)."""
    if df.empty:
        return np.array([], dtype=str)
    return df[list(keys)].astype(str).agg("/".join, axis=1).to_numpy()


def cell_resample(cells: np.ndarray, rng) -> np.ndarray:
    """Row indices of one cell-level bootstrap replicate: draw as many cells as there are,
    with replacement, and within each drawn cell as many of its rows (seeds), with
    replacement. ``cells`` labels each row's cell."""
    labels, inverse = np.unique(cells, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(labels))]
    picked = rng.integers(0, len(members), len(members))
    return np.concatenate(
        [m[rng.integers(0, len(m), len(m))] for m in (members[k] for k in picked)]
    )


def cell_bootstrap(stat, cells: np.ndarray, n_boot: int, rng, level: float = 0.95):
    """Percentile interval of ``stat(i)``, ``i`` the row indices of one cell-level replicate
    (:func:`cell_resample`), over ``n_boot`` replicates, and how many of them gave a finite
    value: (lo, hi, n_valid). A replicate whose statistic is not finite (a variable constant
    in it, too few distinct values to fit) is drawn, then left out of the interval and of
    n_valid, so ``n_boot − n_valid`` says how many were; NaN bounds when none has a value."""
    vals = np.array([stat(cell_resample(cells, rng)) for _ in range(n_boot)], dtype=float)
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return np.nan, np.nan, 0
    q = 100 * (1 - level) / 2
    return float(np.percentile(vals, q)), float(np.percentile(vals, 100 - q)), len(vals)


def partial_spearman(y, x, z) -> float:
    """Partial Spearman correlation of ``y`` and ``x`` given ``z``: the Pearson partial
    correlation of their ranks, (r_xy − r_xz·r_yz) / sqrt((1 − r_xz²)(1 − r_yz²)). NaN when a
    variable is constant or x is a monotone function of z (nothing is left to correlate)."""
    ranks = [stats.rankdata(v) for v in (y, x, z)]
    if any(np.ptp(r) == 0 for r in ranks):
        return np.nan
    c = np.corrcoef(ranks)
    r_yx, r_yz, r_xz = c[0, 1], c[0, 2], c[1, 2]
    den = (1 - r_xz**2) * (1 - r_yz**2)
    if den <= 1e-12:
        return np.nan
    return float((r_yx - r_xz * r_yz) / np.sqrt(den))


def quadratic_log_fit(delta, accuracy) -> tuple[float, float]:
    """Fit accuracy ≈ a·(ln δ)² + b·ln δ + c; returns (a, δ at the vertex). a < 0 is concave."""
    a, b, _ = np.polyfit(np.log(delta), accuracy, 2)
    with np.errstate(over="ignore"):  # a nearly flat fit puts its vertex at δ = ∞
        return float(a), float(np.exp(-b / (2 * a))) if a != 0 else np.nan


def _rank(fn, x, y) -> float:
    """A rank coefficient, NaN where either variable is constant (it has none)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    return float(fn(x, y)[0])


def _curvature(delta, accuracy) -> float:
    """Curvature of the quadratic fit in ln δ, NaN with fewer than 3 distinct δ to fit."""
    return quadratic_log_fit(delta, accuracy)[0] if len(np.unique(delta)) > 2 else np.nan


def correlations(
    df: pd.DataFrame,
    target: str = "test_accuracy",
    predictors=("sharpness", "sharpness_plain", "delta"),
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Spearman and Kendall coefficients of ``target`` with each predictor, plus the
    curvature and vertex of the quadratic fit in ln δ. The coefficients are computed on all
    rows; their 95 % intervals from the cell-level bootstrap (:func:`cell_bootstrap`: cells
    with replacement, seeds within them). Each row says what it rests on: ``n`` rows (runs),
    ``n_cells`` cells, and ``n_boot_valid`` of the ``n_boot`` replicates drawn that gave a
    finite value (both 0 where the row has no interval)."""
    rng = np.random.default_rng(seed)
    rows = []

    def row(pred, method, value, sub, interval=None):
        lo, hi, valid = interval or (np.nan, np.nan, 0)
        return {
            "predictor": pred,
            "method": method,
            "coefficient": value,
            "ci_low": lo,
            "ci_high": hi,
            "n": len(sub),
            "n_cells": len(np.unique(cell_labels(sub))),
            "n_boot": n_boot if interval else 0,
            "n_boot_valid": valid,
        }

    for pred in predictors:
        sub = df[[*CELL, pred, target]].dropna(subset=[pred, target])
        x, y = sub[pred].to_numpy(float), sub[target].to_numpy(float)
        cells = cell_labels(sub)
        for name, fn in METHODS.items():
            interval = (
                cell_bootstrap(lambda i, fn=fn, x=x, y=y: _rank(fn, x[i], y[i]), cells, n_boot, rng)
                if len(x) > 2
                else None
            )
            rows.append(row(pred, name, _rank(fn, x, y), sub, interval))
    sub = df[[*CELL, "delta", target]].dropna(subset=["delta", target])
    sub = sub[sub.delta > 0]
    if len(sub) > 3 and sub.delta.nunique() > 2:
        x, y = sub.delta.to_numpy(float), sub[target].to_numpy(float)
        a, vertex = quadratic_log_fit(x, y)
        interval = cell_bootstrap(lambda i: _curvature(x[i], y[i]), cell_labels(sub), n_boot, rng)
        rows.append(row("delta", "quadratic_ln_delta_curvature", a, sub, interval))
        rows.append(row("delta", "quadratic_ln_delta_vertex", vertex, sub))
    return pd.DataFrame(rows)
