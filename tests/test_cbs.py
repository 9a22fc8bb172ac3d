import numpy as np
import pandas as pd
import pytest

from sgdsmooth import cbs, theory


def runs(table):
    """Rows (batch_size, seed, steps, status) → a cbs_runs frame for one SGD cell."""
    df = pd.DataFrame(table, columns=["batch_size", "seed", "steps", "status"])
    return df.assign(optimizer="sgd", lr=0.1, beta=0.0, epsilon=0.5, sfo=df.steps * df.batch_size,
                     reached=df.status == "reached")


def test_argmin_of_mean_sfo_by_hand():
    df = runs([
        (8, 0, 100, "reached"), (8, 1, 120, "reached"),      # SFO mean 880
        (16, 0, 40, "reached"), (16, 1, 60, "reached"),      # 800  ← b*
        (32, 0, 30, "reached"), (32, 1, 32, "reached"),      # 992
    ])
    t = cbs.critical_batch_sizes(df, n_boot=200)
    assert set(t.critical_batch_size) == {16}
    row = t.set_index("batch_size").loc[16]
    assert row.sfo_mean == 800 and row.sfo_min == 640 and row.sfo_max == 960 and row.is_critical
    assert t.bootstrap_share.sum() == pytest.approx(1.0)


def test_censored_and_diverged_runs_are_counted_and_excluded():
    df = runs([
        (8, 0, 10, "censored"), (8, 1, 5, "reached"),        # would win on the reached run alone
        (16, 0, 40, "reached"), (16, 1, 50, "diverged"),
        (32, 0, 30, "reached"), (32, 1, 31, "reached"),
    ])
    t = cbs.critical_batch_sizes(df, n_boot=50).set_index("batch_size")
    assert (t.critical_batch_size == 32).all()
    assert t.loc[8, "n_censored"] == 1 and t.loc[16, "n_diverged"] == 1
    assert t.loc[8, "n_reached"] == 1 and t.loc[8, "sfo_mean"] == 40
    assert t.loc[8, "bootstrap_share"] < 0.5  # only resamples that draw seed 1 twice pick b = 8


def test_no_complete_batch_size_gives_unknown():
    t = cbs.critical_batch_sizes(runs([(8, 0, 10, "censored")]), n_boot=10)
    assert (t.critical_batch_size == -1).all()


def test_variance_and_delta_tables_use_theory():
    cells = pd.DataFrame({"optimizer": ["shb"], "lr": [0.1], "beta": [0.9], "epsilon": [0.5], "critical_batch_size": [1024]})
    k2 = pd.DataFrame({"optimizer": ["shb"], "lr": [0.1], "beta": [0.9], "k2": [3.0], "k2_method": ["m"]})
    v = cbs.variance_bounds(cells, k2)
    assert v.c2_bound.iloc[0] == pytest.approx(theory.c2_upper_bound("shb", 1024, 0.5, 0.1, 0.9))
    d = cbs.delta_table(v, [8, 64, 512], fine_points=50)
    cfg = d[d.grid == "config"]
    np.testing.assert_allclose(cfg.delta, theory.degree_of_smoothing("shb", 0.1, np.array([8, 64, 512]), v.c2_bound.iloc[0], 0.9, 3.0))
    assert (d.grid == "fine").sum() == 50 and d.batch_size.max() == 512
