"""Does δ predict accuracy better than sharpness? Rank correlations with bootstrap
intervals, and a concave (quadratic) fit of accuracy against log δ."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

METHODS = {"spearman": stats.spearmanr, "kendall": stats.kendalltau}


def _bootstrap(x, y, fn, n_boot, rng) -> tuple[float, float]:
    vals = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            vals.append(fn(x[i], y[i]))
    if not vals:
        return np.nan, np.nan
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


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


def correlations(
    df: pd.DataFrame,
    target: str = "test_accuracy",
    predictors=("sharpness", "sharpness_plain", "delta"),
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Spearman and Kendall coefficients of ``target`` with each predictor (95 % bootstrap
    intervals over rows), plus the curvature and vertex of the quadratic fit in ln δ."""
    rng = np.random.default_rng(seed)
    rows = []
    for pred in predictors:
        sub = df[[pred, target]].dropna()
        x, y = sub[pred].to_numpy(float), sub[target].to_numpy(float)
        for name, fn in METHODS.items():
            coef = lambda a, b, fn=fn: float(fn(a, b)[0])  # noqa: E731
            value = coef(x, y) if len(x) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0 else np.nan
            lo, hi = _bootstrap(x, y, coef, n_boot, rng) if len(x) > 2 else (np.nan, np.nan)
            rows.append(
                {
                    "predictor": pred,
                    "method": name,
                    "coefficient": value,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": len(x),
                }
            )
    sub = df[["delta", target]].dropna()
    sub = sub[sub.delta > 0]
    if len(sub) > 3 and sub.delta.nunique() > 2:
        x, y = sub.delta.to_numpy(float), sub[target].to_numpy(float)
        a, vertex = quadratic_log_fit(x, y)
        lo, hi = _bootstrap(
            x,
            y,
            lambda u, v: quadratic_log_fit(u, v)[0] if len(np.unique(u)) > 2 else np.nan,
            n_boot,
            rng,
        )
        rows.append(
            {
                "predictor": "delta",
                "method": "quadratic_ln_delta_curvature",
                "coefficient": a,
                "ci_low": lo,
                "ci_high": hi,
                "n": len(x),
            }
        )
        rows.append(
            {
                "predictor": "delta",
                "method": "quadratic_ln_delta_vertex",
                "coefficient": vertex,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": len(x),
            }
        )
    return pd.DataFrame(rows)
