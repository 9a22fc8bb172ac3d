"""The claims ledger: each of the article's claims, the statistic that decides it, a verdict.

One row per claim (``tables/claims.parquet``): the statistic in words, its value, an interval
(bootstrap percentiles, or the span over the K² statistics where K² is what is uncertain),
the threshold it is compared with (from the config's ``claims`` block, fixed before the run),
and the verdict, computed here and nowhere typed:

- **held** when the whole interval lies on the claim's side of the threshold;
- **not held** when the whole interval lies on the other side;
- **undetermined** when the interval straddles it, or an input is missing or not established
  (an undetermined or missing b*, no Figure 8, too few runs).

Collapsed runs (docs/method.md §8.9) have no part in b* (cbs.py), hence in no C² bound or δ;
their fixed-epoch runs' accuracy stays in the δ–accuracy and δ–sharpness claims, as every
accuracy statement keeps them (collect.finished).

Where a "held" is an identity of the method rather than a finding, ``note`` says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from . import cbs, collect, theory
from .correlate import quadratic_log_fit

HELD, NOT_HELD, UNDETERMINED = "held", "not held", "undetermined"
VERDICTS = (HELD, NOT_HELD, UNDETERMINED)
KEYS = ["optimizer", "lr", "beta", "batch_size"]
NAMES = {"sgd": "SGD", "shb": "SHB", "nshb": "NSHB"}


def verdict(
    ci_low: float, ci_high: float, above: float | None = None, below: float | None = None
) -> str:
    """held if [ci_low, ci_high] lies inside the claim's region (> ``above`` and/or < ``below``),
    not held if it lies wholly outside it, else undetermined (also for a NaN bound)."""
    if any(v is None or math.isnan(v) for v in (ci_low, ci_high)):
        return UNDETERMINED
    lo_ok = above is None or ci_low > above
    hi_ok = below is None or ci_high < below
    if lo_ok and hi_ok:
        return HELD
    if (above is not None and ci_high <= above) or (below is not None and ci_low >= below):
        return NOT_HELD
    return UNDETERMINED


def _row(claim, statistic, value, lo, hi, threshold, verdict_, n, note=""):
    return {
        "claim": claim,
        "statistic": statistic,
        "value": float(value),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "threshold": threshold,
        "verdict": verdict_,
        "n": int(n),
        "note": note,
    }


def _percentiles(values, level: float) -> tuple[float, float]:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan
    q = 100 * (1 - level) / 2
    return float(np.percentile(v, q)), float(np.percentile(v, 100 - q))


# -- critical batch sizes ---------------------------------------------------------------
def bstar_claims(crit: pd.DataFrame, lr: float, cfg: dict) -> list[dict]:
    """b* exists inside the grid (per optimizer); b*_SHB > b*_SGD; b*_SGD ≈ b*_NSHB."""
    main = crit[(crit.lr - lr).abs() < 1e-12]
    cells = {opt: rows.iloc[0].copy() for opt, rows in main.groupby("optimizer")}
    for opt, c in cells.items():  # b*'s own mean SFO (NaN without b*), for the challengers
        at = main[(main.optimizer == opt) & main.is_critical].sfo_mean
        c["sfo_mean_at_bstar"] = float(at.iloc[0]) if len(at) else np.nan
    runs = main.groupby("optimizer").n_runs.sum()
    rows = []
    share = cfg["established_share"]
    for opt, c in cells.items():
        grid = main[main.optimizer == opt].batch_size
        b = float(c.critical_batch_size)  # NaN: no b*
        cell = main[main.optimizer == opt]
        censored = (
            (cell.n_censored > 0) & (cell.n_diverged == 0) & (cell.n_collapsed == 0)
        ).to_numpy()
        beatable = len(cbs.challengers(cell.sfo_lower_mean, censored, c.sfo_mean_at_bstar)) > 0
        only_edge = b in (grid.min(), grid.max()) and not beatable  # nothing else could beat it
        if c.established and c.bootstrap_established >= share:
            v = HELD
        elif only_edge and len(grid) > 2 and c.bstar_ci_low == c.bstar_ci_high == b:
            v = NOT_HELD  # the minimum lies at an end of the grid in every replicate, not inside it
        else:
            # no b* within the budget, or a censored batch size could still beat it
            v = UNDETERMINED
        note = (
            c.reason
            or f"established in {100 * c.bootstrap_established:.0f} % of bootstrap replicates"
        )
        rows.append(
            _row(
                f"b* exists inside the batch grid ({NAMES[opt]})",
                "b* (95 % bootstrap interval over runs, censored ones included)",
                b,
                c.bstar_ci_low,
                c.bstar_ci_high,
                f"established, in ≥ {share:g} of replicates",
                v,
                runs[opt],
                note,
            )
        )

    def log2_gap(a: str, z: str):
        """log2(b*_a / b*_z) with a conservative interval from the two b* intervals."""
        x, y = cells[a], cells[z]
        if pd.isna(x.critical_batch_size) or pd.isna(y.critical_batch_size):  # no b*
            return math.nan, math.nan, math.nan, False
        value = math.log2(x.critical_batch_size / y.critical_batch_size)
        lo, hi = (
            math.log2(x.bstar_ci_low / y.bstar_ci_high),
            math.log2(x.bstar_ci_high / y.bstar_ci_low),
        )
        return value, lo, hi, bool(x.established and y.established)

    if {"shb", "sgd"} <= cells.keys():
        value, lo, hi, both = log2_gap("shb", "sgd")
        rows.append(
            _row(
                "b*_SHB > b*_SGD",
                "log2(b*_SHB / b*_SGD) (interval from the two b* intervals)",
                value,
                lo,
                hi,
                "> 0",
                verdict(lo, hi, above=0.0) if both else UNDETERMINED,
                runs["shb"] + runs["sgd"],
                "" if both else "a b* is not established",
            )
        )
    if {"sgd", "nshb"} <= cells.keys():
        value, lo, hi, both = log2_gap("sgd", "nshb")
        tol = cfg["same_bstar_log2"]
        span = (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
        note = (
            "when it holds with equal b*, δ_SGD = δ_NSHB = ε·sqrt(η·b*/b) follows identically "
            "(C²_SGD = b*ε²/η, C²_NSHB = b*ε²(1 − β)/η): "
            "Figure 5's coinciding curves are not a second finding"
        )
        rows.append(
            _row(
                "b*_SGD ≈ b*_NSHB",
                "|log2(b*_SGD / b*_NSHB)| (interval from the two b* intervals)",
                abs(value),
                *span,
                f"≤ {tol:g}",
                verdict(*span, below=tol + 1e-9) if both else UNDETERMINED,
                runs["sgd"] + runs["nshb"],
                note if both else "a b* is not established",
            )
        )
    return rows


# -- δ against accuracy -----------------------------------------------------------------
def runs_with_delta(acc: pd.DataFrame, delta: pd.DataFrame, lr: float) -> pd.DataFrame:
    """Finished fixed-epoch runs at the main η with their cell's δ (and its K² band)."""
    d = delta[(delta.grid == "config") & ((delta.lr - lr).abs() < 1e-12)].astype(
        {"batch_size": "int64"}
    )
    ok = collect.finished(acc[(acc.lr - lr).abs() < 1e-12])
    return ok.merge(d[KEYS + ["delta", "delta_low", "delta_high", "established"]], on=KEYS)


def concavity(
    runs: pd.DataFrame, n_boot: int, level: float, rng
) -> tuple[float, float, float, float, float]:
    """Curvature a of accuracy ≈ a(ln δ)² + b ln δ + c (bootstrap interval over runs) and the
    share of replicates whose vertex lies inside the measured δ range."""
    ok = np.isfinite(runs.delta.to_numpy(float)) & (runs.delta.to_numpy(float) > 0)
    x, y = runs.delta.to_numpy(float)[ok], runs.test_accuracy.to_numpy(float)[ok]
    if len(x) < 4 or len(np.unique(x)) < 3:
        return (math.nan,) * 5
    a, vertex = quadratic_log_fit(x, y)
    curv, inside = [], []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if len(np.unique(x[i])) < 3:
            continue
        ai, vi = quadratic_log_fit(x[i], y[i])
        curv.append(ai)
        inside.append(ai < 0 and x.min() <= vi <= x.max())
    lo, hi = _percentiles(curv, level)
    return a, lo, hi, vertex, float(np.mean(inside)) if inside else math.nan


def concavity_claims(runs: pd.DataFrame, cfg: dict, n_boot: int, rng) -> list[dict]:
    """Accuracy is concave in δ with its peak inside the grid, on all runs and on the runs
    whose final training loss reached the config's threshold."""
    rows = []
    thr = cfg["train_loss_max"]
    for label, sub in (
        ("all finished runs", runs),
        (f"runs with final training loss ≤ {thr:g}", runs[runs.train_loss <= thr]),
    ):
        a, lo, hi, vertex, inside = concavity(sub, n_boot, cfg["level"], rng)
        v = verdict(lo, hi, below=0.0)
        if v == HELD:  # concave: is the peak inside the measured δ, in enough replicates?
            v = (
                HELD
                if inside >= cfg["level"]
                else NOT_HELD
                if inside <= 1 - cfg["level"]
                else UNDETERMINED
            )
        kind = "peak" if a < 0 else "minimum"
        note = (
            f"fitted {kind} at δ = {vertex:.3g}; "
            f"measured δ range [{sub.delta.min():.3g}, {sub.delta.max():.3g}]; "
            f"a peak inside it in {100 * inside:.0f} % of bootstrap replicates"
            if not math.isnan(vertex)
            else "too few runs or distinct δ to fit"
        )
        rows.append(
            _row(
                f"accuracy is concave in δ with its peak inside the grid ({label})",
                "curvature a of test accuracy ≈ a(ln δ)² + b·ln δ + c (bootstrap over runs)",
                a,
                lo,
                hi,
                "< 0, peak inside the measured δ range",
                v,
                len(sub),
                note,
            )
        )
    return rows


def best_delta_claims(runs: pd.DataFrame, cfg: dict, n_boot: int, rng) -> list[dict]:
    """Per optimizer: the δ of the batch size with the best mean test accuracy lies in the
    article's range. The interval resamples seeds within cells and spans the K² band."""
    lo_art, hi_art = cfg["article_delta_range"]
    rows = []
    for opt, mine in runs.groupby("optimizer", sort=False):
        cells = {b: g for b, g in mine.groupby("batch_size")}
        means = {b: g.test_accuracy.mean() for b, g in cells.items()}
        best = max(means, key=means.get)
        first = cells[best].iloc[0]
        lows, highs = [], []
        for _ in range(n_boot):
            rep = {
                b: g.test_accuracy.to_numpy()[rng.integers(0, len(g), len(g))].mean()
                for b, g in cells.items()
            }
            pick = cells[max(rep, key=rep.get)].iloc[0]
            lows.append(pick.delta_low)
            highs.append(pick.delta_high)
        lo, hi = _percentiles(lows, cfg["level"])[0], _percentiles(highs, cfg["level"])[1]
        v = verdict(lo, hi, above=lo_art, below=hi_art) if first.established else UNDETERMINED
        rows.append(
            _row(
                f"the best δ lies in the article's range ({NAMES[opt]})",
                f"δ at the best mean test accuracy (b = {best}; bootstrap over seeds, K² band)",
                first.delta,
                lo,
                hi,
                f"inside [{lo_art:g}, {hi_art:g}]",
                v,
                len(mine),
                "" if first.established else "b* not established: δ rests on an undetermined C²",
            )
        )
    return rows


def floor_claim(variance: pd.DataFrame, lr: float, batch_sizes, cfg: dict) -> list[dict]:
    """δ_SHB has a b-independent floor: the floor η·sqrt(β̂K²)'s share of δ_SHB at the
    largest batch size, over the K² statistics (sup, mean, final)."""
    v = variance[(variance.optimizer == "shb") & ((variance.lr - lr).abs() < 1e-12)]
    if v.empty:
        return []
    r = v.iloc[0]
    b = max(batch_sizes)
    shares = []
    for k2 in (r.k2_sup, r.k2_mean, r.k2_final, r.k2):
        floor = theory.degree_of_smoothing("shb", lr, np.inf, r.c2_bound, r.beta, k2)
        total = theory.degree_of_smoothing("shb", lr, b, r.c2_bound, r.beta, k2)
        shares.append(float(floor / total) if total > 0 else math.nan)
    thr = cfg["floor_share"]
    lo, hi = min(shares[:3]), max(shares[:3])
    ver = verdict(lo, hi, above=thr) if r.established else UNDETERMINED
    return [
        _row(
            "δ_SHB has a b-independent floor",
            f"share of δ_SHB at b = {b} due to the floor η·sqrt(β̂K²) (span over K² sup/mean/final)",
            shares[3],
            lo,
            hi,
            f"> {thr:g}",
            ver,
            0 if pd.isna(r.k2_n_runs) else int(r.k2_n_runs),
            "a floor exists for any K² > 0 (an identity of eq. 13); the statistic says whether it "
            "dominates δ_SHB within the grid",
        )
    ]


# -- δ against sharpness ----------------------------------------------------------------
def _spearman(x, y) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y)[0])


def sharpness_claims(
    sharp: pd.DataFrame | None, accuracy: pd.DataFrame, adaptive: bool, cfg: dict, n_boot: int, rng
) -> list[dict]:
    """δ predicts test accuracy better than sharpness: |Spearman(acc, δ)| − |Spearman(acc, S)|
    over Figure 8's networks, paired bootstrap; on all of them and on the converged ones."""
    if sharp is None or sharp.empty:
        return []
    rows = []
    thr = cfg["train_loss_max"]
    loss = accuracy[KEYS + ["seed", "train_loss"]]
    s = sharp.merge(loss, on=KEYS + ["seed"], how="left")
    primary = "sharpness" if adaptive else "sharpness_plain"
    other = "sharpness_plain" if adaptive else "sharpness"
    for col in (primary, other):
        kind = "adaptive" if col == "sharpness" else "plain"
        for label, sub in (
            ("all networks", s),
            (f"training loss ≤ {thr:g}", s[s.train_loss <= thr]),
        ):
            sub = sub[["delta", col, "test_accuracy"]].dropna()
            x_d, x_s, y = (sub[c].to_numpy(float) for c in ("delta", col, "test_accuracy"))
            if len(y) < 4:
                rows.append(
                    _row(
                        f"δ predicts accuracy better than {kind} sharpness ({label})",
                        "|Spearman(acc, δ)| − |Spearman(acc, sharpness)|",
                        math.nan,
                        math.nan,
                        math.nan,
                        "> 0",
                        UNDETERMINED,
                        len(y),
                        "fewer than 4 networks",
                    )
                )
                continue
            value = abs(_spearman(x_d, y)) - abs(_spearman(x_s, y))
            reps = []
            for _ in range(n_boot):
                i = rng.integers(0, len(y), len(y))
                reps.append(abs(_spearman(x_d[i], y[i])) - abs(_spearman(x_s[i], y[i])))
            lo, hi = _percentiles(reps, cfg["level"])
            rows.append(
                _row(
                    f"δ predicts accuracy better than {kind} sharpness ({label})",
                    "|Spearman(acc, δ)| − |Spearman(acc, sharpness)| "
                    "(paired bootstrap over networks)",
                    value,
                    lo,
                    hi,
                    "> 0",
                    verdict(lo, hi, above=0.0),
                    len(y),
                    "the configured primary variant" if col == primary else "the other variant",
                )
            )
    return rows


def ledger(
    crit: pd.DataFrame,
    variance: pd.DataFrame,
    delta: pd.DataFrame,
    accuracy: pd.DataFrame,
    sharp: pd.DataFrame | None,
    *,
    lr: float,
    batch_sizes,
    adaptive: bool,
    cfg: dict,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The whole ledger, in the article's order."""
    rng = np.random.default_rng(seed)
    all_runs = runs = runs_with_delta(accuracy, delta, lr)
    # δ that rests on a b* that is not established is no evidence: those cells are left out
    # of the δ–accuracy and δ–sharpness claims (and the ledger counts what is left).
    runs = runs[runs.established]
    if sharp is not None:
        settled = variance[variance.established][["optimizer", "lr", "beta"]]
        sharp = sharp.merge(settled, on=["optimizer", "lr", "beta"])
    rows = bstar_claims(crit, lr, cfg)
    rows += concavity_claims(runs, cfg, n_boot, rng)
    rows += sharpness_claims(sharp, accuracy, adaptive, cfg, n_boot, rng)
    rows += floor_claim(variance, lr, batch_sizes, cfg)
    rows += best_delta_claims(all_runs, cfg, n_boot, rng)  # undetermined where b* is
    return pd.DataFrame(rows)
