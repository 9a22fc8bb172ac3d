"""The claims ledger: each of the article's claims, the statistic that decides it, a verdict.

One row per claim (``tables/claims.parquet``): the statistic in words, its value, an interval
(bootstrap percentiles, or the span of b*'s interval where b* is what is uncertain), the
threshold it is compared with (from the config's ``claims`` block, fixed before the run),
the verdict, computed here and nowhere typed, and the row's ``kind``:

- **finding**: a statement that could fail on data; ``fails_if`` says which result would
  have failed it. Its verdict is **held** when the whole interval lies on the claim's side of
  the threshold, **not held** when it lies wholly on the other side, **undetermined** when the
  interval straddles it, or an input is missing or not established (an undetermined or
  missing b*, no Figure 8, too few runs). Only findings are counted as held in the abstract.
- **identity**: follows from the config and the formulas whatever was measured (δ_SGD = δ_NSHB
  at equal b*; δ = ε√η at b = b*; a floor of δ_SHB for any K² > 0). Printed with its
  derivation in ``statistic``; its verdict is **identity**, never held.
- **consistency**: one measurement checked against another (consistency.py): the C² bound from
  b* against the measured C², the formula's δ against the measured smoothing, B_simple
  against b*. Verdicts **consistent**, **inconsistent**, **undetermined**.

Text columns (``claim``, ``statistic``, ``threshold``, ``fails_if``, ``note``) are TeX:
math inside $…$, plain Unicode prose outside (paper.tex_mixed typesets them).

Collapsed runs (docs/method.md §8.9) have no part in b* (cbs.py), hence in no C² bound or δ;
their fixed-epoch runs' accuracy stays in the δ–accuracy and δ–sharpness claims, as every
accuracy statement keeps them (collect.finished).

The accuracy claims resample *cells* (optimizer × b, or η × b for Figure 8's networks) and
seeds within them (:func:`cell_resample`): the seeds of one cell share their δ and most of
their outcome, so resampling runs as if independent understates the uncertainty.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from . import cbs, collect, consistency, theory
from .correlate import (
    CELL,
    cell_bootstrap,
    cell_labels,
    cell_resample,
    partial_spearman,
    quadratic_log_fit,
)
from .names import LABELS
from .tables import claims_row

HELD, NOT_HELD, UNDETERMINED = "held", "not held", "undetermined"
IDENTITY = "identity"
CONSISTENT, INCONSISTENT = consistency.CONSISTENT, consistency.INCONSISTENT
VERDICTS = (HELD, NOT_HELD, UNDETERMINED, IDENTITY, CONSISTENT, INCONSISTENT)
FINDING, CONSISTENCY = "finding", "consistency"
KINDS = (FINDING, IDENTITY, CONSISTENCY)
KEYS = list(CELL)
MAIN_CELL = ("optimizer", "batch_size")  # a cell at the main η (one β per optimizer)
# The claims block's keys this module reads beyond the older ones, with config/schema.yaml's
# defaults, so that a caller with an older block (a test, an archived config) still works.
DEFAULTS = {"negligible_rho": 0.2, "consistency_factor": 2.0, "early_epoch": 1}


def sub(opt: str) -> str:
    """An optimizer as a TeX subscript body: \\mathrm{SHB}."""
    return f"\\mathrm{{{LABELS[opt]}}}"


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


def _row(
    test,
    claim,
    statistic,
    value,
    lo,
    hi,
    threshold,
    verdict_,
    n,
    note="",
    *,
    kind=FINDING,
    optimizer="",
    fails_if="",
):
    if kind == FINDING and not fails_if:
        raise ValueError(f"finding {test!r} does not say what result would have failed it")
    return claims_row(
        test,
        kind,
        optimizer,
        claim,
        statistic,
        value,
        lo,
        hi,
        threshold,
        verdict_,
        n,
        fails_if,
        note,
    )


def _percentiles(values, level: float) -> tuple[float, float]:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan
    q = 100 * (1 - level) / 2
    return float(np.percentile(v, q)), float(np.percentile(v, 100 - q))


# -- critical batch sizes ---------------------------------------------------------------
def _interp_words(c) -> str:
    if pd.isna(c.get("bstar_interp", math.nan)):
        return ""
    return (
        f"interpolated $b^* = {c.bstar_interp:.3g}$ "
        f"[{c.bstar_interp_ci_low:.3g}, {c.bstar_interp_ci_high:.3g}]"
    )


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
            # no b* within the budget, a censored batch size could still beat it, or too few
            # replicates pick it (rule (e))
            v = UNDETERMINED
        note = "; ".join(
            w
            for w in (
                c.reason
                or f"established in {100 * c.bootstrap_established:.0f} % of bootstrap replicates",
                _interp_words(c),
            )
            if w
        )
        rows.append(
            _row(
                "bstar_exists",
                f"$b^*_{{{sub(opt)}}}$ exists inside the batch grid",
                "$b^*$ (95 % bootstrap interval over runs, censored ones included)",
                b,
                c.bstar_ci_low,
                c.bstar_ci_high,
                f"established, in ≥ {share:g} of replicates",
                v,
                runs[opt],
                note,
                optimizer=opt,
                fails_if=(
                    "$b^*$ at the smallest or largest batch size in every replicate, with no "
                    "censored batch size that could beat it"
                ),
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
                "bstar_order",
                "$b^*_{\\mathrm{SHB}} > b^*_{\\mathrm{SGD}}$",
                "$\\log_2(b^*_{\\mathrm{SHB}}/b^*_{\\mathrm{SGD}})$ "
                "(interval from the two $b^*$ intervals)",
                value,
                lo,
                hi,
                "> 0",
                verdict(lo, hi, above=0.0) if both else UNDETERMINED,
                runs["shb"] + runs["sgd"],
                "" if both else "a $b^*$ is not established",
                fails_if="the whole interval ≤ 0: SHB's $b^*$ at or below SGD's in every replicate",
            )
        )
    if {"sgd", "nshb"} <= cells.keys():
        value, lo, hi, both = log2_gap("sgd", "nshb")
        tol = cfg["same_bstar_log2"]
        span = (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
        rows.append(
            _row(
                "bstar_same",
                "$b^*_{\\mathrm{SGD}} \\approx b^*_{\\mathrm{NSHB}}$",
                "$|\\log_2(b^*_{\\mathrm{SGD}}/b^*_{\\mathrm{NSHB}})|$ "
                "(interval from the two $b^*$ intervals)",
                abs(value),
                *span,
                f"≤ {tol:g}",
                verdict(*span, below=tol + 1e-9) if both else UNDETERMINED,
                runs["sgd"] + runs["nshb"],
                "" if both else "a $b^*$ is not established",
                fails_if=f"the whole interval > {tol:g}: the two $b^*$ more than "
                f"a factor $2^{{{tol:g}}}$ apart in every replicate",
            )
        )
    return rows


# -- identities: what follows from the config and the formulas, whatever was measured -------
def identity_rows(variance: pd.DataFrame, lr: float, batch_sizes, epsilon: float) -> list[dict]:
    """The ledger's identities, each with its derivation and the value it forces; never a
    finding. (a) δ_NSHB/δ_SGD = sqrt(b*_NSHB/b*_SGD) at every b, so equal b* give equal δ;
    (b) δ = ε√η at b = b* for SGD and NSHB; (c) δ_SHB has the b-independent term η√(β̂K²)."""
    v = variance[(variance.lr - lr).abs() < 1e-12].set_index("optimizer")
    rows = []
    have = [o for o in ("sgd", "nshb") if o in v.index and pd.notna(v.c2_bound.get(o))]
    if len(have) == 2:
        bs = np.asarray(sorted(batch_sizes), dtype=float)
        d = {o: theory.degree_of_smoothing(o, lr, bs, v.c2_bound[o], v.beta[o], 0.0) for o in have}
        ratio = float(np.mean(d["nshb"] / d["sgd"]))
        rows.append(
            _row(
                "identity_sgd_nshb",
                "$\\delta_{\\mathrm{NSHB}}/\\delta_{\\mathrm{SGD}} = "
                "\\sqrt{b^*_{\\mathrm{NSHB}}/b^*_{\\mathrm{SGD}}}$ at every $b$",
                "$C^2_{\\mathrm{SGD}} = b^*\\varepsilon^2/\\eta$ and "
                "$C^2_{\\mathrm{NSHB}} = b^*\\varepsilon^2(1-\\beta)/\\eta$ in eqs. 12 and 14 "
                "give $\\delta = \\varepsilon\\sqrt{\\eta b^*/b}$ for both",
                ratio,
                ratio,
                ratio,
                "",
                IDENTITY,
                len(bs),
                "equal $b^*$ make the two $\\delta$ curves coincide: not a second finding",
                kind=IDENTITY,
            )
        )
    for o in have or [o for o in ("sgd", "nshb") if o in v.index]:
        if pd.isna(v.c2_bound.get(o)):
            continue
        at = float(
            theory.degree_of_smoothing(
                o, lr, v.critical_batch_size[o], v.c2_bound[o], v.beta[o], 0.0
            )
        )
        rows.append(
            _row(
                "identity_delta_at_bstar",
                f"$\\delta_{{{sub(o)}}} = \\varepsilon\\sqrt{{\\eta}}$ at $b = b^*$",
                "the Theorem 4.4 bound at $b^*$ in eq. "
                + ("12" if o == "sgd" else "14")
                + f": $\\varepsilon\\sqrt{{\\eta}} = {epsilon:g}\\sqrt{{{lr:g}}}$",
                at,
                at,
                at,
                "",
                IDENTITY,
                1,
                "holds on any data: the best-$\\delta$ rows are findings only through which "
                "$b$ has the best accuracy",
                kind=IDENTITY,
                optimizer=o,
            )
        )
    if "shb" in v.index and pd.notna(v.k2_sup.get("shb")):
        r = v.loc["shb"]
        floor = float(theory.degree_of_smoothing("shb", lr, np.inf, r.c2_bound, r.beta, r.k2_sup))
        rows.append(
            _row(
                "identity_floor",
                "$\\delta_{\\mathrm{SHB}}$ has a $b$-independent term "
                "$\\eta\\sqrt{\\hat\\beta K^2}$",
                "eq. 13 as $b \\to \\infty$; present for any $K^2 > 0$ (value: at the $K^2$ bound)",
                floor,
                floor,
                floor,
                "",
                IDENTITY,
                0 if pd.isna(r.k2_n_runs) else int(r.k2_n_runs),
                "whether the floor matters within the grid is the finding row "
                "on its share of $\\delta_{\\mathrm{SHB}}$",
                kind=IDENTITY,
                optimizer="shb",
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
) -> tuple[float, float, float, float, float, int]:
    """Curvature a of accuracy ≈ a(ln δ)² + b ln δ + c (cell-level bootstrap interval), δ at
    its vertex, the share of replicates whose vertex is a peak inside the measured δ range,
    and how many replicates had too few distinct δ to fit (left out, counted)."""
    ok = np.isfinite(runs.delta.to_numpy(float)) & (runs.delta.to_numpy(float) > 0)
    r = runs[ok]
    x, y = r.delta.to_numpy(float), r.test_accuracy.to_numpy(float)
    if len(x) < 4 or len(np.unique(x)) < 3:
        return (math.nan,) * 5 + (0,)
    a, vertex = quadratic_log_fit(x, y)
    cells = cell_labels(r, MAIN_CELL)
    curv, inside, skipped = [], [], 0
    for _ in range(n_boot):
        i = cell_resample(cells, rng)
        if len(np.unique(x[i])) < 3:
            skipped += 1
            continue
        ai, vi = quadratic_log_fit(x[i], y[i])
        curv.append(ai)
        inside.append(ai < 0 and x.min() <= vi <= x.max())
    lo, hi = _percentiles(curv, level)
    return a, lo, hi, vertex, float(np.mean(inside)) if inside else math.nan, skipped


def concavity_claims(runs: pd.DataFrame, cfg: dict, n_boot: int, rng) -> list[dict]:
    """Accuracy is concave in δ with its peak inside the grid: pooled over the optimizers on
    all runs and on the runs whose final training loss reached the config's threshold, and
    per optimizer on all runs (the pooled fit mixes optimizers whose δ ranges barely overlap)."""
    rows = []
    thr = cfg["train_loss_max"]
    groups = [
        ("concave_all", "", "all finished runs", runs),
        (
            "concave_fit",
            "",
            f"runs with final training loss ≤ {thr:g}",
            runs[runs.train_loss <= thr],
        ),
    ]
    groups += [
        ("concave", opt, f"{LABELS[opt]} alone, all finished runs", mine)
        for opt, mine in runs.groupby("optimizer", sort=True)
    ]
    for test, opt, label, part in groups:
        a, lo, hi, vertex, inside, skipped = concavity(part, n_boot, cfg["level"], rng)
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
            f"fitted {kind} at $\\delta = {vertex:.3g}$; "
            f"measured $\\delta$ range [{part.delta.min():.3g}, {part.delta.max():.3g}]; "
            f"a peak inside it in {100 * inside:.0f} % of bootstrap replicates"
            + (f"; {skipped} replicates with < 3 distinct $\\delta$ left out" if skipped else "")
            if not math.isnan(vertex)
            else "too few runs or distinct $\\delta$ to fit"
        )
        rows.append(
            _row(
                test,
                f"accuracy is concave in $\\delta$ with its peak inside the grid ({label})",
                "curvature $a$ of test accuracy $\\approx a(\\ln\\delta)^2 + b\\ln\\delta + c$ "
                "(bootstrap over cells, seeds within)",
                a,
                lo,
                hi,
                "< 0, peak inside the measured $\\delta$ range",
                v,
                len(part),
                note,
                optimizer=opt,
                fails_if=(
                    "the whole interval of $a$ ≥ 0 (accuracy convex in $\\ln\\delta$), or a "
                    f"peak outside the measured $\\delta$ range in ≥ {cfg['level']:g} of replicates"
                ),
            )
        )
    return rows


def beyond_steps_claim(runs: pd.DataFrame, cfg: dict, n_train: int, n_boot: int, rng) -> list[dict]:
    """Does δ predict accuracy beyond the number of steps? The partial Spearman correlation
    of test accuracy with δ given the number of optimizer steps (epochs·⌊n/b⌋), cell-level
    bootstrap. Within one optimizer's fixed-epoch runs δ and the steps both fall with b, so
    what separates them is δ's difference between optimizers at equal steps (docs/method.md
    §9)."""
    r = runs[np.isfinite(runs.delta.to_numpy(float)) & runs.test_accuracy.notna()]
    neg = cfg["negligible_rho"]
    row = dict(
        test="delta_beyond_steps",
        claim="$\\delta$ predicts test accuracy beyond the number of steps",
        statistic="partial Spearman $\\rho(\\mathrm{acc}, \\delta \\mid T)$, "
        "$T$ = epochs$\\cdot\\lfloor n/b\\rfloor$ (bootstrap over cells, seeds within)",
        threshold=f"interval excludes 0 (not held: inside ±{neg:g})",
        fails_if=f"the whole interval inside [−{neg:g}, {neg:g}]: once the number of steps "
        "is accounted for, $\\delta$ carries no rank information on accuracy",
    )
    if len(r) < 5 or r.delta.nunique() < 3:
        return [
            _row(
                **row,
                value=math.nan,
                lo=math.nan,
                hi=math.nan,
                verdict_=UNDETERMINED,
                n=len(r),
                note="fewer than 5 runs or 3 distinct $\\delta$",
            )
        ]
    steps = (r.epochs * (n_train // r.batch_size)).to_numpy(float)
    x, y = r.delta.to_numpy(float), r.test_accuracy.to_numpy(float)
    value = partial_spearman(y, x, steps)
    lo, hi, valid = cell_bootstrap(
        lambda i: partial_spearman(y[i], x[i], steps[i]),
        cell_labels(r, MAIN_CELL),
        n_boot,
        rng,
        cfg["level"],
    )
    if math.isnan(lo):
        v = UNDETERMINED
    elif lo > 0 or hi < 0:
        v = HELD
    elif -neg <= lo and hi <= neg:
        v = NOT_HELD
    else:
        v = UNDETERMINED
    rho_d, rho_t = _spearman(x, y), _spearman(steps, y)
    note = (
        f"Spearman with accuracy: $\\delta$ {rho_d:.2f}, steps {rho_t:.2f}; "
        f"{n_boot - valid} replicates without a coefficient left out"
    )
    return [_row(**row, value=value, lo=lo, hi=hi, verdict_=v, n=len(r), note=note)]


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
                "best_delta",
                f"the best $\\delta_{{{sub(opt)}}}$ lies in the article's range",
                f"$\\delta$ at the best mean test accuracy ($b = {best}$; bootstrap over "
                "seeds, $K^2$ band)",
                first.delta,
                lo,
                hi,
                f"inside [{lo_art:g}, {hi_art:g}]",
                v,
                len(mine),
                ""
                if first.established
                else "$b^*$ not established: $\\delta$ rests on an undetermined $C^2$",
                optimizer=opt,
                fails_if=f"the whole interval outside [{lo_art:g}, {hi_art:g}]",
            )
        )
    return rows


def floor_claim(variance: pd.DataFrame, lr: float, batch_sizes, cfg: dict) -> list[dict]:
    """The floor η·sqrt(β̂K²) of δ_SHB is more than ``floor_share`` of δ_SHB at the largest
    batch size, with K² its bound over the trajectory (the sup); the interval spans the C²
    bound's interval (b*'s). The mean and final K² are the sensitivity, in the note, and the
    K² below which the claim fails is printed."""
    v = variance[(variance.optimizer == "shb") & ((variance.lr - lr).abs() < 1e-12)]
    if v.empty:
        return []
    r = v.iloc[0]
    b = max(batch_sizes)
    thr = cfg["floor_share"]
    c2 = r.c2_bound
    c2_lo, c2_hi = (r.get("c2_bound_low", c2), r.get("c2_bound_high", c2))
    c2_lo, c2_hi = (c2 if pd.isna(c2_lo) else c2_lo), (c2 if pd.isna(c2_hi) else c2_hi)
    share = float(theory.floor_share(b, c2, r.beta, r.k2_sup))
    lo = float(theory.floor_share(b, c2_hi, r.beta, r.k2_sup))  # more C², smaller share
    hi = float(theory.floor_share(b, c2_lo, r.beta, r.k2_sup))
    k2_min = float(theory.k2_for_floor_share(thr, b, c2_hi, r.beta))
    measured = not pd.isna(r.k2_sup)
    ver = verdict(lo, hi, above=thr) if r.established and measured else UNDETERMINED
    sens = ", ".join(
        f"{name} $K^2$ {getattr(r, f'k2_{name}'):.3g} gives "
        f"{float(theory.floor_share(b, c2, r.beta, getattr(r, f'k2_{name}'))):.2f}"
        for name in ("mean", "final")
        if not pd.isna(getattr(r, f"k2_{name}", math.nan))
    )
    source = r.get("k2_sup_source", "")
    note = "; ".join(
        w
        for w in (
            f"$K^2$ bound = {r.k2_sup:.3g}, the largest of "
            f"{0 if pd.isna(r.get('k2_n_points', math.nan)) else int(r.k2_n_points)} values "
            f"recorded along {0 if pd.isna(r.k2_n_runs) else int(r.k2_n_runs)} runs "
            f"({source}); the trajectory's sup can only be larger"
            if measured
            else "",
            f"sensitivity: {sens}" if sens else "",
            "" if r.established else "$b^*_{\\mathrm{SHB}}$ not established",
        )
        if w
    )
    return [
        _row(
            "floor_share",
            "the floor $\\eta\\sqrt{\\hat\\beta K^2}$ is most of $\\delta_{\\mathrm{SHB}}$ "
            f"at $b = {b}$",
            f"floor's share of $\\delta_{{\\mathrm{{SHB}}}}$ at $b = {b}$, $K^2$ its bound "
            "over the runs (interval over $b^*$'s interval)",
            share,
            lo,
            hi,
            f"> {thr:g}",
            ver,
            0 if pd.isna(r.k2_n_runs) else int(r.k2_n_runs),
            note,
            optimizer="shb",
            fails_if=f"the whole interval ≤ {thr:g}, i.e. a $K^2$ bound below {k2_min:.3g}",
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
    over Figure 8's networks, paired bootstrap over cells (η × b) and seeds within them; on
    all of them and on the converged ones."""
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
        for subset, label, part in (
            ("all", "all networks", s),
            ("fit", f"training loss ≤ {thr:g}", s[s.train_loss <= thr]),
        ):
            part = part[["lr", "batch_size", "delta", col, "test_accuracy"]].dropna()
            x_d, x_s, y = (part[c].to_numpy(float) for c in ("delta", col, "test_accuracy"))
            common = dict(
                test=f"delta_vs_{kind}_sharpness_{subset}",
                claim=f"$\\delta$ predicts accuracy better than {kind} sharpness ({label})",
                threshold="> 0",
                fails_if="the whole interval ≤ 0: sharpness ranks accuracy at least as well "
                "as $\\delta$",
            )
            if len(y) < 4:
                rows.append(
                    _row(
                        **common,
                        statistic="$|\\rho_S(\\mathrm{acc}, \\delta)| - "
                        "|\\rho_S(\\mathrm{acc}, S)|$",
                        value=math.nan,
                        lo=math.nan,
                        hi=math.nan,
                        verdict_=UNDETERMINED,
                        n=len(y),
                        note="fewer than 4 networks",
                    )
                )
                continue
            value = abs(_spearman(x_d, y)) - abs(_spearman(x_s, y))
            lo, hi, _ = cell_bootstrap(
                lambda i, x_d=x_d, x_s=x_s, y=y: (
                    abs(_spearman(x_d[i], y[i])) - abs(_spearman(x_s[i], y[i]))
                ),
                cell_labels(part, ("lr", "batch_size")),  # SGD alone: its cells are η × b
                n_boot,
                rng,
                cfg["level"],
            )
            rows.append(
                _row(
                    **common,
                    statistic="$|\\rho_S(\\mathrm{acc}, \\delta)| - |\\rho_S(\\mathrm{acc}, S)|$ "
                    "(paired bootstrap over cells, seeds within)",
                    value=value,
                    lo=lo,
                    hi=hi,
                    verdict_=verdict(lo, hi, above=0.0),
                    n=len(y),
                    note="the configured primary variant"
                    if col == primary
                    else "the other variant",
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
    noise: pd.DataFrame | None = None,
    epsilon: float = math.nan,
    n_train: int = 0,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The whole ledger: findings in the article's order, then the identities, then the
    consistency rows of the inference chain (consistency.rows)."""
    cfg = DEFAULTS | dict(cfg)
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
    if n_train:
        rows += beyond_steps_claim(runs, cfg, n_train, n_boot, rng)
    rows += sharpness_claims(sharp, accuracy, adaptive, cfg, n_boot, rng)
    rows += floor_claim(variance, lr, batch_sizes, cfg)
    rows += best_delta_claims(all_runs, cfg, n_boot, rng)  # undetermined where b* is
    rows += identity_rows(variance, lr, batch_sizes, epsilon)
    rows += consistency.rows(variance, delta, noise, lr=lr, cfg=cfg, n_boot=n_boot, rng=rng)
    return pd.DataFrame(rows)
