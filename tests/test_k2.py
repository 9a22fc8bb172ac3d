"""K² from the runs' recorded ‖∇F_b‖² trajectories: sup, mean and final, by hand."""

import math

import pandas as pd
import pytest

from sgdsmooth import collect, tables


def run_file(tmp_path, opt, b, seed, k2_by_epoch, bn_mode="train"):
    epochs = sorted(k2_by_epoch)
    rows = pd.DataFrame(
        {
            "epoch": epochs,
            "step": epochs,
            "lr": 0.1,
            "train_loss": 1.0,
            "train_accuracy": 0.5,
            "test_loss": 1.0,
            "test_accuracy": 0.5,
            "grad_norm_mean": 1.0,
            "full_grad_norm_sq": [k2_by_epoch[e] for e in epochs],
            "wall_time": 1.0,
        }
    )
    meta = {
        "config": {"optimizer": opt, "lr": 0.1, "beta": 0.9, "batch_size": b, "seed": seed},
        "summary": {"status": "ok"},
        "gradient_function": {"bn_mode": bn_mode},
    }
    path = tmp_path / f"{opt}{b}s{seed}.parquet"
    tables.write_table(rows, path, "epochs", meta)
    return path


@pytest.fixture
def paths(tmp_path):
    nan = math.nan
    return [
        run_file(
            tmp_path, "shb", 32, 0, {1: nan, 2: 400.0, 4: 2.0, 8: 1.0}
        ),  # the transient: sup 400 at epoch 2
        run_file(tmp_path, "shb", 32, 1, {2: 10.0, 4: 2.0, 8: 3.0}),
        run_file(tmp_path, "shb", 64, 0, {2: 6.0, 4: 4.0, 8: 2.0}),
    ]


def test_k2_table_per_cell_by_hand(paths):
    t = collect.k2_table(paths).set_index("batch_size")
    tables.write_table(t.reset_index(), paths[0].parent / "k2.parquet", "k2")  # it is a k2 table
    c = t.loc[32]
    assert c.n_runs == 2 and c.n_points == 6 and c.k2_sup == 400
    assert c.k2_mean == pytest.approx(((400 + 2 + 1) / 3 + (10 + 2 + 3) / 3) / 2)
    assert c.k2_final == pytest.approx(2.0) and c.k2_final_stderr == pytest.approx(
        1.0
    )  # sd √2 of (1, 3), over √2 runs
    assert t.loc[64].k2_mean == pytest.approx(4.0) and math.isnan(
        t.loc[64].k2_mean_stderr
    )  # one run
    assert (t.bn_mode == "train").all()


def test_k2_pooled_over_batch_sizes_and_the_statistic_that_feeds_delta(paths):
    for stat, expected in (("sup", 400.0), ("final", 2.0), ("mean", (403 / 3 + 5 + 4) / 3)):
        p = collect.k2_pooled(paths, stat).iloc[0]
        assert p.k2 == pytest.approx(expected) and p.k2_statistic == stat and p.k2_n_runs == 3
    assert collect.k2_pooled(paths).iloc[0].k2_sup_source == "b = 32, seed 0, epoch 2"
    with pytest.raises(ValueError, match="statistic"):
        collect.k2_pooled(paths, "median")


def test_k2_of_two_functions_is_refused(paths, tmp_path):
    other = run_file(tmp_path, "shb", 32, 2, {2: 1.0}, bn_mode="eval")
    with pytest.raises(ValueError, match="different functions"):
        collect.k2_table(paths + [other])


def test_k2_leaves_out_a_collapsed_run(paths):
    """The run with the 400 transient, marked collapsed by the accuracy table: K² of its cell
    and of the optimizer are then those of the other runs alone."""
    keys = {"optimizer": "shb", "lr": 0.1, "beta": 0.9}
    acc = pd.DataFrame(
        [
            keys | {"batch_size": b, "seed": s, "status": status}
            for b, s, status in ((32, 0, "collapsed"), (32, 1, "ok"), (64, 0, "ok"))
        ]
    )
    t = collect.k2_table(paths, acc).set_index("batch_size")
    assert t.loc[32].n_runs == 1 and t.loc[32].k2_sup == 10.0
    pooled = collect.k2_pooled(paths, "sup", acc).iloc[0]
    assert pooled.k2 == 10.0 and pooled.k2_n_runs == 2
