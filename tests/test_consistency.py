"""The inference chain checked against measurements: each consistency row flips with the data."""

import math

import numpy as np
import pandas as pd
import pytest

from sgdsmooth import consistency, theory

CFG = {"level": 0.95, "consistency_factor": 2, "early_epoch": 1}
GRID = [16, 32, 64, 128, 256]


def variance(opt="nshb", b_star=32.0, interval=(30.0, 40.0), established=True):
    beta = 0.0 if opt == "sgd" else 0.9

    def bound(b):
        return float(theory.c2_upper_bound(opt, b, 0.5, 0.1, beta))

    return pd.DataFrame(
        [
            {
                "optimizer": opt,
                "lr": 0.1,
                "beta": beta,
                "epsilon": 0.5,
                "critical_batch_size": b_star,
                "established": established,
                "bstar_low": interval[0],
                "bstar_high": interval[1],
                "bstar_interval": "interpolated",
                "c2_bound": bound(b_star),
                "c2_bound_low": bound(interval[0]),
                "c2_bound_high": bound(interval[1]),
            }
        ]
    )


def delta(var):
    v = var.iloc[0]
    b = np.array(GRID, dtype=float)

    def d(c2):
        return theory.degree_of_smoothing(v.optimizer, 0.1, b, c2, v.beta, 0.0)

    return pd.DataFrame(
        {
            "optimizer": v.optimizer,
            "lr": 0.1,
            "beta": v.beta,
            "batch_size": b,
            "delta": d(v.c2_bound),
            "delta_ci_low": d(v.c2_bound_low),
            "delta_ci_high": d(v.c2_bound_high),
            "grid": "config",
        }
    )


def noise(var, c2=2.0, se=0.2, ratio=1.0, scale=40.0, epochs=(1, 8), seeds=3):
    """Measurements at every b, seed and epoch: C² ± se, measured smoothing ``ratio`` × the
    formula's δ, B_simple ``scale``."""
    d = delta(var).set_index("batch_size").delta
    gen = np.random.default_rng(0)
    rows = []
    for b in GRID:
        for s in range(seeds):
            for e in epochs:
                rows.append(
                    {
                        "optimizer": var.optimizer.iloc[0],
                        "lr": 0.1,
                        "beta": var.beta.iloc[0],
                        "batch_size": b,
                        "seed": s,
                        "epoch": e,
                        "c2": c2 * (1 + 0.02 * gen.normal()),
                        "c2_stderr": se,
                        "k2": 0.01,
                        "delta_empirical": ratio * d[b] * (1 + 0.02 * gen.normal()),
                        "noise_scale": scale * (1 + 0.02 * gen.normal()),
                    }
                )
    return pd.DataFrame(rows)


def check(var, nz, **cfg):
    rows = consistency.rows(
        var, delta(var), nz, lr=0.1, cfg=CFG | cfg, n_boot=300, rng=np.random.default_rng(0)
    )
    assert all(r["kind"] == "consistency" and r["fails_if"] for r in rows)
    return {r["test"]: r for r in rows}


def test_the_c2_bound_and_the_bstar_it_implies_flip_with_the_measured_c2():
    var = variance("nshb")  # bound 8 at b* = 32
    low = check(var, noise(var, c2=2.0))
    assert low["c2_bound"]["verdict"] == "consistent"
    assert low["c2_bound"]["value"] == pytest.approx(2.0 / 8.0, rel=0.1)
    assert low["bstar_implied"]["verdict"] == "consistent"
    # The NSHB: measured C² ≈ 22 at b*, bound 8; the theorem then wants b* ≥ 88.
    high = check(var, noise(var, c2=22.0, se=1.0))
    assert high["c2_bound"]["verdict"] == "inconsistent" and high["c2_bound"]["value"] > 2
    assert high["bstar_implied"]["verdict"] == "inconsistent"
    assert high["bstar_implied"]["value"] == pytest.approx(math.log2(32 / 88), abs=0.05)
    assert "implies $b^* \\geq 8" in high["bstar_implied"]["note"]
    # Above the bound, but by less than its standard error: open.
    close = check(var, noise(var, c2=8.5, se=2.0))
    assert close["c2_bound"]["verdict"] == "undetermined"
    assert "above the bound in" in close["c2_bound"]["note"]


def test_the_c2_rows_use_every_point_at_bstar_and_name_their_runs():
    var = variance("sgd", b_star=32.0)
    nz = noise(var, c2=5.0)
    nz.loc[(nz.batch_size == 32) & (nz.seed == 1) & (nz.epoch == 8), "c2"] = 70.0
    nz.loc[(nz.batch_size == 64) & (nz.seed == 0) & (nz.epoch == 8), "c2"] = 100.0  # not b*
    row = check(var, nz)["c2_bound"]
    assert row["n"] == 6 and row["value"] == pytest.approx(70.0 / 80.0)  # bound 32·0.5²/0.1
    assert "seed 1, epoch 8" in row["note"] and "fixed-epoch runs (epochs 1, 8)" in row["note"]
    assert "no CBS run recorded $C^2$" in row["note"]
    # The other batch sizes are context, not evidence: their C² is of another F_b.
    assert "at every $b$: above the bound in 1 of 30 points" in row["note"]
    # Rows from CBS runs, where the training side writes them, count and are named.
    cbs = nz[nz.batch_size == 32].assign(protocol="cbs", c2=3.0)
    both = pd.concat([nz.assign(protocol="epochs"), cbs], ignore_index=True)
    row = check(var, both)["c2_bound"]
    assert row["n"] == 12 and "CBS runs" in row["note"] and "no CBS run" not in row["note"]


def test_a_bad_estimate_is_counted_not_dropped_silently():
    var = variance("sgd")
    nz = noise(var)
    nz.loc[nz.index[:2], "c2"] = np.nan
    nz.loc[nz.index[2], "delta_empirical"] = -1.0
    rows = check(var, nz)
    assert "estimates NaN or not positive, left out" in rows["delta_ratio"]["note"]
    bad_at_bstar = nz[(nz.batch_size == 32) & ~(nz.c2 > 0)]
    if len(bad_at_bstar):
        assert f"{len(bad_at_bstar)} estimates NaN" in rows["c2_bound"]["note"]


@pytest.mark.parametrize(
    ("ratio", "verdict"), [(1.2, "consistent"), (0.1, "inconsistent"), (5.0, "inconsistent")]
)
def test_the_formula_delta_against_the_measured_smoothing(ratio, verdict):
    var = variance("sgd")
    row = check(var, noise(var, ratio=ratio))["delta_ratio"]
    assert row["verdict"] == verdict and row["value"] == pytest.approx(ratio, rel=0.1)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]


@pytest.mark.parametrize(("scale", "verdict"), [(40.0, "consistent"), (400.0, "inconsistent")])
def test_bsimple_measured_early_against_bstar(scale, verdict):
    var = variance("sgd")
    row = check(var, noise(var, scale=scale))["bsimple"]
    assert row["verdict"] == verdict
    assert row["value"] == pytest.approx(math.log2(scale / 32), abs=0.1)
    words = "without the CBS sweep" if verdict == "consistent" else "cannot be skipped"
    assert words in row["note"]


def test_bsimple_without_an_early_measurement_says_what_to_measure():
    var = variance("sgd")
    row = check(var, noise(var, epochs=(8,)))["bsimple"]
    assert row["verdict"] == "undetermined" and math.isnan(row["value"])
    assert "add 1 to noise.epochs" in row["note"]


def test_no_noise_table_and_no_bstar_leave_every_row_undetermined():
    var = variance("shb")
    rows = check(var, None)
    assert {r["verdict"] for r in rows.values()} == {"undetermined"}
    none = variance("shb").assign(
        critical_batch_size=np.nan, c2_bound=np.nan, c2_bound_low=np.nan, c2_bound_high=np.nan
    )
    rows = check(none, noise(variance("shb")))
    assert {r["verdict"] for r in rows.values()} == {"undetermined"}


def test_an_unestablished_bstar_leaves_the_rows_open():
    var = variance("nshb", established=False)
    rows = check(var, noise(var, c2=22.0, se=1.0))
    assert rows["c2_bound"]["verdict"] == "undetermined"
    assert "not established" in rows["c2_bound"]["note"]
