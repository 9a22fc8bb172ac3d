"""Critical batch size: the batch size that minimises the mean SFO complexity T·b over seeds.

Censored runs (budget exhausted before ε) and diverged runs have no SFO, only a lower bound
or none at all, so a batch size is a candidate for b* only when every one of its runs
reached ε. They are counted in the table, never averaged in silently; the SFO mean/min/max
columns summarise the runs that reached ε.

Stability: ``bootstrap_share`` is the share of bootstrap resamples (seeds drawn with
replacement, independently at each batch size) whose argmin is that batch size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import theory

GROUP = ["optimizer", "lr", "beta", "epsilon"]


def _argmin_over_complete(means: pd.Series, complete: pd.Series) -> float:
    eligible = means[complete]
    return float(eligible.idxmin()) if len(eligible) else np.nan


def summarise_cell(runs: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per batch size for the runs of one optimizer × lr × beta × epsilon."""
    by_b = runs.groupby("batch_size")
    reached = runs[runs.reached]
    stats = reached.groupby("batch_size").sfo.agg(["mean", "min", "max"]).reindex(by_b.size().index)
    out = pd.DataFrame({
        "batch_size": by_b.size().index,
        "sfo_mean": stats["mean"].to_numpy(float), "sfo_min": stats["min"].to_numpy(float),
        "sfo_max": stats["max"].to_numpy(float), "n_runs": by_b.size().to_numpy(),
        "n_reached": by_b.reached.sum().to_numpy(),
        "n_censored": by_b.status.apply(lambda s: (s == "censored").sum()).to_numpy(),
        "n_diverged": by_b.status.apply(lambda s: (s == "diverged").sum()).to_numpy(),
    }).set_index("batch_size", drop=False)
    complete = out.n_reached == out.n_runs
    b_star = _argmin_over_complete(out.sfo_mean, complete)

    # Bootstrap over seeds: resample each batch size's runs; a resample containing a run
    # that did not reach ε makes that batch size ineligible in that replicate.
    rng = np.random.default_rng(seed)
    picks = []
    groups = {b: (g.sfo.to_numpy(float), g.reached.to_numpy()) for b, g in by_b}
    for _ in range(n_boot):
        means, ok = {}, {}
        for b, (sfo, hit) in groups.items():
            i = rng.integers(0, len(sfo), len(sfo))
            ok[b] = bool(hit[i].all())
            means[b] = sfo[i].mean()
        picks.append(_argmin_over_complete(pd.Series(means), pd.Series(ok)))
    picks = pd.Series(picks)
    out["bootstrap_share"] = [float((picks == b).mean()) for b in out.batch_size]
    out["is_critical"] = out.batch_size == b_star
    out["critical_batch_size"] = b_star
    return out.reset_index(drop=True)


def critical_batch_sizes(cbs_runs: pd.DataFrame, n_boot: int = 1000) -> pd.DataFrame:
    """The ``critical_batch_size`` table for every optimizer × lr × beta × epsilon."""
    rows = []
    for key, runs in cbs_runs.groupby(GROUP, sort=True):
        cell = summarise_cell(runs, n_boot)
        for name, value in zip(GROUP, key):
            cell[name] = value
        rows.append(cell)
    out = pd.concat(rows, ignore_index=True)
    # No batch size with every run reaching ε: b* is unknown, recorded as -1.
    out["critical_batch_size"] = out.critical_batch_size.fillna(-1).astype("int64")
    return out


def variance_bounds(cbs: pd.DataFrame, k2: pd.DataFrame) -> pd.DataFrame:
    """C² bounds from b* (Theorem 4.4) beside the measured K², per optimizer × lr × beta."""
    cells = cbs.drop_duplicates(GROUP)[GROUP + ["critical_batch_size"]].copy()
    known = cells.critical_batch_size > 0
    cells["c2_bound"] = np.nan
    for opt, idx in cells[known].groupby("optimizer").groups.items():
        c = cells.loc[idx]
        cells.loc[idx, "c2_bound"] = theory.c2_upper_bound(opt, c.critical_batch_size, c.epsilon, c.lr, c.beta)
    return cells.merge(k2, on=["optimizer", "lr", "beta"], how="left")


def delta_table(variance: pd.DataFrame, batch_sizes, fine_points: int = 200) -> pd.DataFrame:
    """δ (eqs. 12–14) on the config's batch sizes and on a fine log grid between them."""
    grid = np.asarray(sorted(batch_sizes), dtype=float)
    fine = np.geomspace(grid.min(), grid.max(), fine_points)
    rows = []
    for v in variance.itertuples():
        for name, bs in (("config", grid), ("fine", fine)):
            d = theory.degree_of_smoothing(v.optimizer, v.lr, bs, v.c2_bound, v.beta, v.k2)
            rows.append(pd.DataFrame({
                "optimizer": v.optimizer, "lr": v.lr, "beta": v.beta, "batch_size": bs,
                "c2_bound": v.c2_bound, "k2": v.k2, "delta": d, "grid": name,
            }))
    return pd.concat(rows, ignore_index=True)
