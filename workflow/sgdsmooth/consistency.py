"""The inference chain checked against the pipeline's own measurements: the ledger's
*consistency* rows (docs/method.md §9.2), per optimizer at the main η.

The article reads b* → C² (Theorem 4.4 backwards) → δ (eqs. 12–14). The pipeline also
measures C², the search-direction noise and the gradient noise scale directly (noise.py, the
``noise`` table), so each link can be checked:

1. ``c2_bound``: the C² bound from b* against the largest C² measured at b = b*. The bound
   must cover every C² along the runs; the statistic is (largest measured C²)/(bound),
   consistent when its whole interval (the point's standard error, b*'s interval) is below 1.
2. ``bstar_implied``: the same inequality read forwards, in b*: the b* that the *median*
   measured C² at b* implies (theory.bstar_lower_bound) against the measured b*. The median
   rather than the largest, so an inconsistency here cannot come from one noisy point.
3. ``delta_ratio``: the measured smoothing η·sqrt(E‖d_t − ∇F_b‖²) against the formula's δ at
   the same b, as the median ratio over runs; consistent within a factor
   ``claims.consistency_factor`` (2).
4. ``bsimple``: b* predicted by McCandlish et al.'s gradient noise scale B_simple = C²/K²
   measured early (at epochs ≤ ``claims.early_epoch``: a fixed budget of that many passes
   over the data, whatever b) against the measured b*: within the same factor or not. Where
   it is, a user could have skipped the CBS sweep.

Which runs the C² comes from: every row of the ``noise`` table at the optimizer's main η and
b = b*, at every recorded epoch, from whatever protocol wrote it (a ``protocol`` column
where present: "epochs" for fixed-epoch runs, "cbs" for CBS runs; a table without one is of
fixed-epoch runs). Each row's note says which runs and epochs stood behind it. Estimates
that are NaN or not positive are counted in the note, never dropped silently.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from . import theory
from .correlate import cell_resample  # one resampling scheme for the whole ledger
from .names import LABELS
from .tables import SCHEMAS, claims_row

CONSISTENT, INCONSISTENT, UNDETERMINED = "consistent", "inconsistent", "undetermined"
KIND = "consistency"


def _sub(opt: str) -> str:
    return f"\\mathrm{{{LABELS[opt]}}}"


def _row(test, opt, claim, statistic, value, lo, hi, threshold, verdict, n, note, fails_if):
    return claims_row(
        test, KIND, opt, claim, statistic, value, lo, hi, threshold, verdict, n, fails_if, note
    )


def _open(common: dict, note: str) -> dict:
    """A check that could not be made: no value, undetermined, and why in its note."""
    nan = math.nan
    return _row(**common, value=nan, lo=nan, hi=nan, verdict=UNDETERMINED, n=0, note=note)


def below(lo: float, hi: float, limit: float) -> str:
    """consistent when [lo, hi] lies below ``limit``, inconsistent when wholly above it."""
    if math.isnan(lo) or math.isnan(hi):
        return UNDETERMINED
    return CONSISTENT if hi < limit else INCONSISTENT if lo > limit else UNDETERMINED


def within(lo: float, hi: float, low: float, high: float) -> str:
    """consistent when [lo, hi] lies inside [low, high], inconsistent when wholly outside."""
    if math.isnan(lo) or math.isnan(hi):
        return UNDETERMINED
    if low <= lo and hi <= high:
        return CONSISTENT
    if hi < low or lo > high:
        return INCONSISTENT
    return UNDETERMINED


def _bad(x: pd.Series) -> int:
    return int((~(x > 0)).sum())


def _sources(points: pd.DataFrame) -> str:
    """Which runs and epochs a set of noise rows comes from, in words."""
    parts = []
    for protocol, g in points.groupby("protocol", sort=True):
        epochs = ", ".join(str(int(e)) for e in sorted(g.epoch.unique()))
        parts.append(
            f"{len(g)} from {g.seed.nunique()} {'CBS' if protocol == 'cbs' else 'fixed-epoch'} "
            f"runs (epochs {epochs})"
        )
    return "; ".join(parts)


def _median_interval(values, se, cells, n_boot: int, level: float, rng) -> tuple[float, float]:
    """Percentile interval of the median of ``values``: cells resampled with replacement and
    rows within them, each value perturbed by its own standard error ``se`` (0 where none)."""
    v, s = np.asarray(values, float), np.nan_to_num(np.asarray(se, float))
    if not len(v):
        return math.nan, math.nan
    reps = []
    for _ in range(n_boot):
        i = cell_resample(cells, rng)
        reps.append(np.median(v[i] + s[i] * rng.standard_normal(len(i))))
    q = 100 * (1 - level) / 2
    return float(np.percentile(reps, q)), float(np.percentile(reps, 100 - q))


def rows(
    variance: pd.DataFrame,
    delta: pd.DataFrame,
    noise: pd.DataFrame | None,
    *,
    lr: float,
    cfg: dict,
    n_boot: int,
    rng,
) -> list[dict]:
    """The consistency rows for every optimizer of ``variance`` at η = ``lr``."""
    var = variance[(variance.lr - lr).abs() < 1e-12]
    if noise is None:  # not measured (noise.epochs empty): every row says so
        noise = pd.DataFrame({c: pd.Series(dtype=float) for c in SCHEMAS["noise"].names})
    noise = noise[(noise.lr - lr).abs() < 1e-12].copy()
    if "protocol" not in noise:
        noise["protocol"] = "epochs"
    d = delta[(delta.grid == "config") & ((delta.lr - lr).abs() < 1e-12)].astype(
        {"batch_size": "int64"}
    )
    for end in ("delta_ci_low", "delta_ci_high"):  # a table without b*'s interval: the line
        if end not in d:
            d = d.assign(**{end: d.delta})
    out = []
    for v in var.sort_values("optimizer").itertuples():
        mine = noise[noise.optimizer == v.optimizer]
        out += _chain_rows(v, mine, cfg, n_boot, rng)
        out.append(_delta_row(v, mine, d[d.optimizer == v.optimizer], cfg, n_boot, rng))
        out.append(_bsimple_row(v, mine, cfg, n_boot, rng))
    return out


def _chain_rows(v, mine: pd.DataFrame, cfg: dict, n_boot: int, rng) -> list[dict]:
    """Rows 1 and 2: the bound from b* against the largest measured C² at b*, and the b* the
    median measured C² at b* implies against the measured b*."""
    opt, z = v.optimizer, stats.norm.ppf(0.5 + cfg["level"] / 2)
    s = _sub(opt)
    known = not pd.isna(v.critical_batch_size)
    b_star = int(v.critical_batch_size) if known else None
    at = mine[mine.batch_size == b_star] if known else mine.iloc[:0]
    bad = _bad(at.c2) if len(at) else 0
    at = at[at.c2 > 0]
    one = dict(
        test="c2_bound",
        opt=opt,
        claim=(
            f"the bound $C^2_{{{s}}} < {v.c2_bound:.3g}$ from $b^*$ covers the $C^2$ measured "
            "at $b^*$"
            if known
            else f"the $C^2_{{{s}}}$ bound from $b^*$ covers the $C^2$ measured at $b^*$"
        ),
        statistic="largest measured $C^2$ at $b = b^*$ / bound (interval: its standard "
        f"error × {z:.2f}, bound over $b^*$'s interval)",
        threshold="< 1",
        fails_if=f"the largest measured $C^2$ exceeds the bound by more than {z:.2f} standard "
        "errors, even at the upper end of $b^*$'s interval",
    )
    two = dict(
        test="bstar_implied",
        opt=opt,
        claim=f"the measured $b^*_{{{s}}}$ is at least the $b^*$ Theorem 4.4 implies from the "
        "measured $C^2$",
        statistic="$\\log_2(b^* / b^*_{C^2})$, $b^*_{C^2}$ from the median measured $C^2$ at "
        "$b^*$ (bootstrap over runs and each estimate's standard error, $b^*$'s interval)",
        threshold="> 0",
        fails_if="the whole interval < 0: the measured $C^2$ implies a larger $b^*$ than measured",
    )
    if not known or at.empty:
        why = (
            "no $b^*$"
            if not known
            else f"no $C^2$ measured at $b = {b_star}$"
            + (f" ({bad} estimates NaN or not positive)" if bad else "")
        )
        return [_open(c, why) for c in (one, two)]
    settled = bool(v.established)
    where = _sources(at) + (f"; {bad} estimates NaN or not positive, left out" if bad else "")
    if not (at.protocol == "cbs").any():
        where += "; no CBS run recorded $C^2$"
    top = at.loc[at.c2.idxmax()]
    se = 0.0 if pd.isna(top.c2_stderr) else float(top.c2_stderr)
    ratio = top.c2 / v.c2_bound
    lo, hi = (top.c2 - z * se) / v.c2_bound_high, (top.c2 + z * se) / v.c2_bound_low
    over = int((at.c2 > v.c2_bound).sum())
    clear = int((at.c2 - z * at.c2_stderr.fillna(0) > v.c2_bound).sum())
    note1 = (
        f"largest $C^2 = {top.c2:.3g} \\pm {se:.2g}$ (seed {int(top.seed)}, epoch "
        f"{int(top.epoch)}); median {at.c2.median():.3g}; above the bound in {over} of "
        f"{len(at)} points, {clear} by more than {z:.2f} standard errors; {where}"
    )
    every = mine[mine.c2 > 0]
    if len(every) > len(at):  # context: C² of F_b changes with b (BatchNorm), the bound is b*'s
        note1 += (
            f"; at every $b$: above the bound in {int((every.c2 > v.c2_bound).sum())} of "
            f"{len(every)} points (median {every.c2.median():.3g})"
        )
    verdict1 = below(lo, hi, 1.0) if settled else UNDETERMINED
    if not settled:
        note1 += "; $b^*$ not established"
    med = float(at.c2.median())
    c_lo, c_hi = _median_interval(
        at.c2, at.c2_stderr, at.seed.astype(str).to_numpy(), n_boot, cfg["level"], rng
    )

    def implied(c2):
        return float(theory.bstar_lower_bound(opt, c2, v.epsilon, v.lr, v.beta))

    b_impl = implied(med)
    value = math.log2(b_star / b_impl)
    lo2 = math.log2(v.bstar_low / implied(c_hi)) if c_hi > 0 else math.nan
    hi2 = math.log2(v.bstar_high / implied(c_lo)) if c_lo > 0 else math.inf
    note2 = (
        f"median measured $C^2 = {med:.3g}$ [{c_lo:.3g}, {c_hi:.3g}] implies "
        f"$b^* \\geq {b_impl:.3g}$; measured $b^* = {b_star}$ "
        f"[{v.bstar_low:.3g}, {v.bstar_high:.3g}] ({v.bstar_interval}); the row above's "
        "inequality read in $b^*$"
    )
    verdict2 = (
        (CONSISTENT if lo2 > 0 else INCONSISTENT if hi2 < 0 else UNDETERMINED)
        if settled and not math.isnan(lo2)
        else UNDETERMINED
    )
    return [
        _row(**one, value=ratio, lo=lo, hi=hi, verdict=verdict1, n=len(at), note=note1),
        _row(**two, value=value, lo=lo2, hi=hi2, verdict=verdict2, n=len(at), note=note2),
    ]


def _delta_row(v, mine: pd.DataFrame, d: pd.DataFrame, cfg: dict, n_boot: int, rng) -> dict:
    """Row 3: the measured smoothing against the formula's δ, median ratio over runs."""
    opt, f = v.optimizer, cfg["consistency_factor"]
    s = _sub(opt)
    common = dict(
        test="delta_ratio",
        opt=opt,
        claim=f"the formula's $\\delta_{{{s}}}$ matches the measured smoothing within a "
        f"factor {f:g}",
        statistic="median over runs of $\\eta\\sqrt{\\mathbb{E}\\|d_t - \\nabla F_b\\|^2}"
        "/\\delta$ (bootstrap over batch sizes and seeds, $\\delta$ over $b^*$'s interval)",
        threshold=f"inside [{1 / f:.3g}, {f:g}]",
        fails_if=f"the whole interval outside [{1 / f:.3g}, {f:g}]",
    )
    m = mine.merge(d[["batch_size", "delta", "delta_ci_low", "delta_ci_high"]], on="batch_size")
    bad = _bad(m.delta_empirical) if len(m) else 0
    m = m[(m.delta_empirical > 0) & (m.delta > 0)]
    if m.empty:
        why = "no $b^*$" if pd.isna(v.critical_batch_size) else "no measured smoothing"
        return _open(common, why + (f" ({bad} estimates NaN or not positive)" if bad else ""))
    ratio = (m.delta_empirical / m.delta).to_numpy(float)
    r_lo = (m.delta_empirical / m.delta_ci_high).to_numpy(float)
    r_hi = (m.delta_empirical / m.delta_ci_low).to_numpy(float)
    cells = m.batch_size.astype(str).to_numpy()
    lo = _median_interval(r_lo, np.zeros(len(m)), cells, n_boot, cfg["level"], rng)[0]
    hi = _median_interval(r_hi, np.zeros(len(m)), cells, n_boot, cfg["level"], rng)[1]
    by_b = m.assign(r=ratio).groupby("batch_size").r.median()
    note = (
        "median ratio per $b$: "
        + ", ".join(f"{b}: {x:.2g}" for b, x in by_b.items())
        + f"; {_sources(m)}"
        + (f"; {bad} estimates NaN or not positive, left out" if bad else "")
        + ("" if v.established else "; $b^*$ not established")
    )
    verdict = within(lo, hi, 1 / f, f) if v.established else UNDETERMINED
    return _row(
        **common,
        value=float(np.median(ratio)),
        lo=lo,
        hi=hi,
        verdict=verdict,
        n=len(m),
        note=note,
    )


def _bsimple_row(v, mine: pd.DataFrame, cfg: dict, n_boot: int, rng) -> dict:
    """Row 4: b* predicted by B_simple = C²/K² measured early, within a factor of b*."""
    opt, f, early = v.optimizer, cfg["consistency_factor"], int(cfg["early_epoch"])
    s = _sub(opt)
    lim = math.log2(f)
    common = dict(
        test="bsimple",
        opt=opt,
        claim=f"$B_{{\\mathrm{{simple}}}}$ measured by epoch {early} predicts "
        f"$b^*_{{{s}}}$ within a factor {f:g}",
        statistic="$\\log_2(B_{\\mathrm{simple}}/b^*)$, median $B_{\\mathrm{simple}} = C^2/K^2$ "
        "over runs (bootstrap over batch sizes and seeds, $b^*$'s interval)",
        threshold=f"inside [−{lim:g}, {lim:g}]",
        fails_if=f"the whole interval outside [−{lim:g}, {lim:g}]: the noise scale misses "
        f"$b^*$ by more than a factor {f:g}",
    )
    early_rows = mine[mine.epoch <= early] if len(mine) else mine
    bad = _bad(early_rows.noise_scale) if len(early_rows) else 0
    early_rows = early_rows[early_rows.noise_scale > 0] if len(early_rows) else early_rows
    if pd.isna(v.critical_batch_size) or early_rows.empty:
        recorded = sorted({int(e) for e in mine.epoch}) if len(mine) else []
        why = (
            "no $b^*$"
            if pd.isna(v.critical_batch_size)
            else f"no noise measurement at or before epoch {early} (recorded after epochs "
            f"{recorded or 'none'}; add {early} to noise.epochs)"
        )
        return _open(common, why + (f"; {bad} estimates NaN or not positive" if bad else ""))
    # Each run's earliest measurement within the budget.
    first = early_rows.sort_values("epoch").drop_duplicates(["batch_size", "seed", "protocol"])
    med = float(first.noise_scale.median())
    cells = first.batch_size.astype(str).to_numpy()
    m_lo, m_hi = _median_interval(
        first.noise_scale, np.zeros(len(first)), cells, n_boot, cfg["level"], rng
    )
    b_star = float(v.critical_batch_size)
    value = math.log2(med / b_star)
    lo, hi = math.log2(m_lo / v.bstar_high), math.log2(m_hi / v.bstar_low)
    verdict = within(lo, hi, -lim, lim) if v.established else UNDETERMINED
    by_b = first.groupby("batch_size").noise_scale.median()
    advice = {
        CONSISTENT: "here the noise scale would have located $b^*$ without the CBS sweep",
        INCONSISTENT: "here the CBS sweep cannot be skipped",
        UNDETERMINED: "whether the CBS sweep could be skipped is open here",
    }[verdict]
    note = (
        f"median $B_{{\\mathrm{{simple}}}} = {med:.3g}$ [{m_lo:.3g}, {m_hi:.3g}] against "
        f"$b^* = {int(b_star)}$; per $b$: "
        + ", ".join(f"{b}: {x:.3g}" for b, x in by_b.items())
        + f"; {_sources(first)}"
        + (f"; {bad} estimates NaN or not positive, left out" if bad else "")
        + f"; {advice}"
    )
    return _row(**common, value=value, lo=lo, hi=hi, verdict=verdict, n=len(first), note=note)
