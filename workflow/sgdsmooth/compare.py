"""A rerun check: rebuilt tables against an archive of the same study (rule ``compare``).

What changed between two builds of one config, and whether each change is larger than the
uncertainty the pipeline itself states for that number:

- **verdicts**: every ledger row matched between the two (by ``test`` and ``optimizer``; an
  archive from before the ledger had them is matched by its claim text), its verdict then and
  now, flagged where it changed;
- **claim statistics**: each row's value then and now, against its own intervals: whether the
  new value lies inside the archived interval, and the archived value inside the new one;
- **b\\***: per optimizer × η, the grid b\\* then and now, established then and now, whether the
  new b\\* lies inside the archived bootstrap interval;
- **means over seeds**: mean SFO per cell and batch size, and mean test accuracy per
  fixed-epoch cell, then and now, as z = (now − then)/sqrt(se_then² + se_now²) with each
  standard error over its seeds; |z| > 2 is flagged.

Rows present in one build only are listed, never dropped.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

Z_FLAG = 2.0

# Claim texts of the ledger before it had ``test`` and ``optimizer`` columns (archive/default
# of 2026-11-30), mapped onto today's keys.
_OLD_CLAIMS = [
    (r"^b\* exists inside the batch grid \((\w+)\)$", "bstar_exists"),
    (r"^b\*_SHB > b\*_SGD$", "bstar_order"),
    (r"^b\*_SGD ≈ b\*_NSHB$", "bstar_same"),
    (r"^accuracy is concave in δ .*\(all finished runs\)$", "concave_all"),
    (r"^accuracy is concave in δ .*\(runs with final training loss", "concave_fit"),
    (
        r"^δ predicts accuracy better than (\w+) sharpness \(all networks\)$",
        "delta_vs_{}_sharpness_all",
    ),
    (
        r"^δ predicts accuracy better than (\w+) sharpness \(training loss",
        "delta_vs_{}_sharpness_fit",
    ),
    (r"^δ_SHB has a b-independent floor$", "floor_share:shb"),
    (r"^the best δ lies in the article's range \((\w+)\)$", "best_delta"),
]


def claim_key(row) -> str:
    """``test[:optimizer]`` of a ledger row, today's or an old one's (from its text)."""
    test = getattr(row, "test", None)
    if isinstance(test, str) and test:
        opt = getattr(row, "optimizer", "") or ""
        return test + (f":{opt}" if opt else "")
    for pattern, key in _OLD_CLAIMS:
        m = re.search(pattern, row.claim)
        if not m:
            continue
        if "{}" in key:
            return key.format(m.group(1))
        if m.groups():  # an optimizer in parentheses
            return f"{key}:{m.group(1).lower()}"
        return key
    return "claim:" + row.claim


def _inside(x: float, lo: float, hi: float) -> str:
    if any(pd.isna(v) for v in (x, lo, hi)):
        return "n/a"
    return "yes" if lo - 1e-12 <= x <= hi + 1e-12 else "NO"


def claims(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    """One row per ledger row of either build: verdicts and values then and now."""
    n = new.assign(key=[claim_key(r) for r in new.itertuples()]).set_index("key")
    o = old.assign(key=[claim_key(r) for r in old.itertuples()]).set_index("key")
    rows = []
    for key in list(o.index) + [k for k in n.index if k not in o.index]:
        a = o.loc[key] if key in o.index else None
        b = n.loc[key] if key in n.index else None
        rows.append(
            {
                "key": key,
                "kind": b.kind if b is not None and "kind" in n else "",
                "verdict_then": a.verdict if a is not None else "(absent)",
                "verdict_now": b.verdict if b is not None else "(absent)",
                "changed": a is not None and b is not None and a.verdict != b.verdict,
                "only": "" if a is not None and b is not None else "then" if b is None else "now",
                "value_then": a.value if a is not None else math.nan,
                "ci_then": (a.ci_low, a.ci_high) if a is not None else (math.nan, math.nan),
                "value_now": b.value if b is not None else math.nan,
                "ci_now": (b.ci_low, b.ci_high) if b is not None else (math.nan, math.nan),
                "now_in_then": _inside(b.value, a.ci_low, a.ci_high)
                if a is not None and b is not None
                else "n/a",
                "then_in_now": _inside(a.value, b.ci_low, b.ci_high)
                if a is not None and b is not None
                else "n/a",
            }
        )
    return pd.DataFrame(rows)


def bstar(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer × η: b* then and now, established then and now, now inside then's
    bootstrap interval."""
    keys = ["optimizer", "lr"]
    cols = keys + ["critical_batch_size", "established", "bstar_ci_low", "bstar_ci_high"]
    a = old.drop_duplicates(keys)[cols]
    b = new.drop_duplicates(keys)[cols]
    m = a.merge(b, on=keys, how="outer", suffixes=("_then", "_now"))
    m["now_in_then"] = [
        _inside(r.critical_batch_size_now, r.bstar_ci_low_then, r.bstar_ci_high_then)
        for r in m.itertuples()
    ]
    then, now = m.critical_batch_size_then, m.critical_batch_size_now
    same_b = (then == now) | (then.isna() & now.isna())  # no b* in both is no change
    m["changed"] = ~same_b | (m.established_then != m.established_now)
    return m


def _mean_se(df: pd.DataFrame, keys: list[str], col: str) -> pd.DataFrame:
    g = df.groupby(keys)[col]
    return pd.DataFrame(
        {"mean": g.mean(), "se": g.std(ddof=1) / np.sqrt(g.count()), "n": g.count()}
    ).reset_index()


def means(new: pd.DataFrame, old: pd.DataFrame, keys: list[str], col: str) -> pd.DataFrame:
    """Per cell: the mean of ``col`` over seeds then and now, z of the change."""
    m = _mean_se(old.dropna(subset=[col]), keys, col).merge(
        _mean_se(new.dropna(subset=[col]), keys, col),
        on=keys,
        how="outer",
        suffixes=("_then", "_now"),
    )
    se = np.sqrt(m.se_then**2 + m.se_now**2)
    m["z"] = np.where(se > 0, (m.mean_now - m.mean_then) / se, np.nan)
    m["flag"] = m.z.abs() > Z_FLAG
    return m


def _f(x) -> str:
    if isinstance(x, tuple):
        return "[" + ", ".join(_f(v) for v in x) + "]"
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _table(df: pd.DataFrame, cols: list[str]) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_f(getattr(r, c)) for c in cols) + " |" for r in df.itertuples()]
    return lines


def report(new: dict[str, pd.DataFrame], old: dict[str, pd.DataFrame], label: str) -> str:
    """The rerun check as Markdown: what changed, and each change against its interval."""
    out = [f"# Rerun check against {label}", ""]
    if "claims" in new and "claims" in old:
        c = claims(new["claims"], old["claims"])
        changed = c[c.changed]
        both = c[c.only == ""]
        out += [
            f"## Verdicts: {len(changed)} of the {len(both)} ledger rows in both builds changed",
            "",
            *(
                _table(changed, ["key", "kind", "verdict_then", "verdict_now"])
                if len(changed)
                else ["none"]
            ),
            "",
            f"Rows only in the archive: {', '.join(c[c.only == 'then'].key) or 'none'}. "
            f"Rows only in the rebuild: {', '.join(c[c.only == 'now'].key) or 'none'}.",
            "",
            "## Claim statistics against their own intervals",
            "",
            f"Outside the archived interval: {int((c.now_in_then == 'NO').sum())}; archived "
            f"value outside the new interval: {int((c.then_in_now == 'NO').sum())} "
            f"(of {int((c.now_in_then != 'n/a').sum())} rows with both).",
            "",
            *_table(
                c,
                ["key", "value_then", "ci_then", "value_now", "ci_now", "now_in_then"]
                + ["then_in_now"],
            ),
            "",
        ]
    if "critical_batch_size" in new and "critical_batch_size" in old:
        b = bstar(new["critical_batch_size"], old["critical_batch_size"])
        out += [
            f"## b*: {int(b.changed.sum())} of {len(b)} cells changed",
            "",
            *_table(
                b,
                ["optimizer", "lr", "critical_batch_size_then", "established_then"]
                + ["critical_batch_size_now", "established_now", "now_in_then"],
            ),
            "",
        ]
    for name, keys, col, what in (
        ("cbs_runs", ["optimizer", "lr", "batch_size"], "sfo", "mean SFO over seeds (all runs)"),
        ("accuracy", ["optimizer", "lr", "batch_size"], "test_accuracy", "mean test accuracy"),
    ):
        if name in new and name in old:
            m = means(new[name], old[name], keys, col)
            largest = float((m.mean_now / m.mean_then - 1).abs().max())
            out += [
                f"## {what}: {int(m.flag.sum())} of {len(m)} cells moved by more than "
                f"{Z_FLAG:g} standard errors",
                "",
                f"Largest relative change: {_f(largest)}.",
                "",
                *_table(m, keys + ["mean_then", "mean_now", "z", "flag"]),
                "",
            ]
    return "\n".join(out) + "\n"
