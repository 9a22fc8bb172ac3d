from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgdsmooth import cbs, theory


def runs(table):
    """Rows (batch_size, seed, steps, status) → a cbs_runs frame for one SGD cell."""
    df = pd.DataFrame(table, columns=["batch_size", "seed", "steps", "status"])
    return df.assign(
        optimizer="sgd",
        lr=0.1,
        beta=0.0,
        epsilon=0.5,
        sfo=df.steps * df.batch_size,
        reached=df.status == "reached",
    )


def test_argmin_of_mean_sfo_by_hand():
    df = runs(
        [
            (8, 0, 100, "reached"),
            (8, 1, 120, "reached"),  # SFO mean 880
            (16, 0, 40, "reached"),
            (16, 1, 60, "reached"),  # 800  ← b*
            (32, 0, 30, "reached"),
            (32, 1, 32, "reached"),  # 992
        ]
    )
    t = cbs.critical_batch_sizes(df, n_boot=200, winner_share=0)  # rules (a)–(d) alone
    assert set(t.critical_batch_size) == {16}
    row = t.set_index("batch_size").loc[16]
    assert row.sfo_mean == 800 and row.sfo_min == 640 and row.sfo_max == 960 and row.is_critical
    assert t.bootstrap_share.sum() == pytest.approx(1.0)
    # Interior, nothing censored: established, and the lower bound is the mean SFO.
    assert t.established.all() and (t.reason == "").all()
    assert (t.sfo_lower_mean == t.sfo_mean).all()


def test_censored_and_diverged_runs_are_counted_and_excluded():
    df = runs(
        [
            (8, 0, 10, "censored"),
            (8, 1, 5, "reached"),  # would win on the reached run alone
            (16, 0, 40, "reached"),
            (16, 1, 50, "diverged"),
            (32, 0, 30, "reached"),
            (32, 1, 31, "reached"),
        ]
    )
    t = cbs.critical_batch_sizes(df, n_boot=50, winner_share=0).set_index("batch_size")
    assert (t.critical_batch_size == 32).all()
    assert t.loc[8, "n_censored"] == 1 and t.loc[16, "n_diverged"] == 1
    assert t.loc[8, "n_reached"] == 1 and t.loc[8, "sfo_mean"] == 40
    assert t.loc[8, "bootstrap_share"] < 0.5  # only resamples that draw seed 1 twice pick b = 8
    assert t.loc[8, "sfo_lower_mean"] == 60 and np.isnan(
        t.loc[16, "sfo_lower_mean"]
    )  # (80 + 40) / 2; diverged: none
    # b* = 32 is the largest batch size; b = 8 (censored, bound 60 < 976) would also stop it.
    assert not t.established.any()
    assert (
        t.reason == "b* = 32 at the largest batch size of the grid; "
        "b=8 censored: SFO lower bound 60 < 976 at b*=32"
    ).all()


def test_no_complete_batch_size_gives_unknown():
    t = cbs.critical_batch_sizes(
        runs([(8, 0, 10, "censored"), (16, 0, 3, "diverged"), (16, 1, 9, "censored")]), n_boot=10
    )
    assert t.critical_batch_size.isna().all() and not t.is_critical.any()
    assert (
        not t.established.any()
        and (
            t.reason == "no batch size where every run reached ε "
            "(of 3 runs: 0 reached, 2 censored, 1 diverged)"
        ).all()
    )
    assert t.bstar_ci_low.isna().all() and t.bstar_ci_high.isna().all()
    assert (t.bootstrap_established == 0).all() and (t.bootstrap_share == 0).all()


def test_variance_and_delta_tables_use_theory():
    cells = pd.DataFrame(
        {
            "optimizer": ["shb"],
            "lr": [0.1],
            "beta": [0.9],
            "epsilon": [0.5],
            "critical_batch_size": [1024],
            "established": [False],
            "reason": ["b* = 1024 at the largest batch size of the grid"],
        }
    )
    k2 = pd.DataFrame(
        {
            "optimizer": ["shb"],
            "lr": [0.1],
            "beta": [0.9],
            "k2": [3.0],
            "k2_sup": [12.0],
            "k2_mean": [3.0],
            "k2_final": [0.5],
        }
    )
    v = cbs.variance_bounds(cells, k2)
    assert (
        not v.established.iloc[0]
        and v.reason.iloc[0] == "b* = 1024 at the largest batch size of the grid"
    )
    assert v.c2_bound.iloc[0] == pytest.approx(theory.c2_upper_bound("shb", 1024, 0.5, 0.1, 0.9))
    d = cbs.delta_table(v, [8, 64, 512], fine_points=50)
    cfg = d[d.grid == "config"]
    np.testing.assert_allclose(
        cfg.delta,
        theory.degree_of_smoothing(
            "shb", 0.1, np.array([8, 64, 512]), v.c2_bound.iloc[0], 0.9, 3.0
        ),
    )
    assert (d.grid == "fine").sum() == 50 and d.batch_size.max() == 512
    # The band spans δ over K²'s summaries: final (0.5) below, sup (12) above.
    for k2_value, column in ((0.5, "delta_low"), (12.0, "delta_high")):
        np.testing.assert_allclose(
            cfg[column],
            theory.degree_of_smoothing(
                "shb", 0.1, np.array([8, 64, 512]), v.c2_bound.iloc[0], 0.9, k2_value
            ),
        )
    assert not d.established.any()


# -- b* that respects censoring -------------------------------------------------------------


def referee_cell(b16):
    """The referee's case: b* = 64 with mean SFO 34528, b = 16's runs given by ``b16``."""
    return runs(
        [
            (8, 0, 5000, "reached"),
            (8, 1, 5000, "reached"),  # 40000
            *[(16, s, steps, status) for s, (steps, status) in enumerate(b16)],
            (32, 0, 1200, "reached"),
            (32, 1, 1200, "reached"),  # 38400
            (64, 0, 540, "reached"),
            (64, 1, 539, "reached"),  # (34560 + 34496) / 2 = 34528  ← b*
            (128, 0, 300, "reached"),
            (128, 1, 300, "reached"),  # 38400
        ]
    )


def test_censored_batch_size_below_the_winner_leaves_bstar_undetermined():
    t = cbs.critical_batch_sizes(referee_cell([(2000, "censored"), (2000, "censored")]), n_boot=50)
    assert (t.critical_batch_size == 64).all() and t.set_index("batch_size").is_critical.loc[64]
    assert not t.established.any()
    assert (t.reason == "b=16 censored: SFO lower bound 32000 < 34528 at b*=64").all()
    row = t.set_index("batch_size").loc[16]
    assert row.sfo_lower_mean == 32000 and np.isnan(row.sfo_mean) and row.n_censored == 2
    # Every replicate sees b = 16's two censored runs at 32000, so none is established.
    assert (t.bootstrap_established == 0).all()


def test_censored_batch_size_above_the_winner_does_not_block():
    # One run reached at 32000 (alone it would beat 34528), one censored at ≥ 38400:
    # mean bound 35200 > 34528.
    t = cbs.critical_batch_sizes(
        referee_cell([(2000, "reached"), (2400, "censored")]), n_boot=50, winner_share=0
    )
    row = t.set_index("batch_size").loc[16]
    assert row.sfo_mean == 32000 and row.sfo_lower_mean == 35200
    assert (t.critical_batch_size == 64).all() and t.established.all() and (t.reason == "").all()
    # A bound equal to b*'s mean SFO does not rule b = 16 out: the rule needs strictly greater.
    t = cbs.critical_batch_sizes(
        referee_cell([(2158, "censored"), (2158, "censored")]), n_boot=10, winner_share=0
    )
    assert (
        not t.established.any()
        and (t.reason == "b=16 censored: SFO lower bound 34528 = 34528 at b*=64").all()
    )


def test_a_diverged_batch_size_does_not_block():
    t = cbs.critical_batch_sizes(referee_cell([(100, "diverged"), (2000, "censored")]), n_boot=10)
    assert (t.critical_batch_size == 64).all() and t.established.all()
    assert t.set_index("batch_size").loc[16, "n_diverged"] == 1


@pytest.mark.parametrize(
    "edge, steps, reason",
    [
        (8, 10, "b* = 8 at the smallest batch size of the grid"),
        (128, 100, "b* = 128 at the largest batch size of the grid"),
    ],
)
def test_bstar_at_the_edge_of_the_grid_is_not_established(edge, steps, reason):
    df = referee_cell([(2000, "reached"), (2000, "reached")])
    df.loc[df.batch_size == edge, "steps"] = steps
    df["sfo"] = df.steps * df.batch_size
    t = cbs.critical_batch_sizes(df, n_boot=20)
    assert (t.critical_batch_size == edge).all()
    assert not t.established.any() and (t.reason == reason).all()
    # Identical runs: every replicate picks the same edge, so none is established.
    assert (t.bootstrap_established == 0).all() and t.set_index("batch_size").bootstrap_share.loc[
        edge
    ] == 1
    assert (t.bstar_ci_low == edge).all() and (t.bstar_ci_high == edge).all()


def test_bstar_where_the_loss_gate_set_t_is_not_established():
    # b = 16 wins, but one of its three runs stopped on the first step after its rule was
    # armed (gate_bound): there the loss threshold, not ε, decided T.
    df = runs(
        [(b, s, steps, "reached") for b, steps in ((8, 100), (16, 40), (32, 30)) for s in range(3)]
    )
    df["gate_bound"] = (df.batch_size == 16) & (df.seed == 1)
    t = cbs.critical_batch_sizes(df, n_boot=200)
    assert (t.critical_batch_size == 16).all() and not t.established.any()
    assert (t.reason == "b* = 16: 1 run(s) stopped as the loss gate opened, not by ε").all()
    # A replicate that draws no gate-bound run at b = 16 ((2/3)³ of them) is established.
    assert 0.2 < t.bootstrap_established.iloc[0] < 0.5
    # Gate-bound runs elsewhere do not touch b*.
    df["gate_bound"] = df.batch_size == 32
    assert cbs.critical_batch_sizes(df, n_boot=20).established.all()


def test_bootstrap_established_is_one_when_every_replicate_agrees():
    df = runs(
        [(b, s, steps, "reached") for b, steps in ((8, 100), (16, 40), (32, 30)) for s in range(3)]
    )
    t = cbs.critical_batch_sizes(df, n_boot=100)
    assert (t.critical_batch_size == 16).all() and t.established.all()
    assert (
        (t.bootstrap_established == 1).all()
        and (t.bstar_ci_low == 16).all()
        and (t.bstar_ci_high == 16).all()
    )


def test_bootstrap_resamples_censored_runs_and_judges_each_replicate():
    df = runs(
        [
            *[(8, s, 1000, "reached") for s in range(3)],  # 8000
            (16, 0, 200, "reached"),
            (16, 1, 200, "reached"),
            (16, 2, 100, "censored"),  # 3200 if it had reached
            *[(32, s, 150, "reached") for s in range(3)],  # 4800  ← b*
            *[(64, s, 100, "reached") for s in range(3)],  # 6400
        ]
    )
    t = cbs.critical_batch_sizes(df, n_boot=4000, winner_share=0)
    by_b = t.set_index("batch_size")
    assert (t.critical_batch_size == 32).all() and not t.established.any()
    assert (t.reason == "b=16 censored: SFO lower bound 2666.7 < 4800 at b*=32").all()
    # A replicate omits the censored run with chance (2/3)³ = 8/27: then b = 16 is b* and
    # established; otherwise b* = 32, blocked by b = 16's bound (≤ 2666.7... < 4800).
    assert by_b.bootstrap_share.loc[16] == pytest.approx(8 / 27, abs=0.03)
    assert by_b.bootstrap_share.loc[32] == pytest.approx(19 / 27, abs=0.03)
    assert (
        by_b.bootstrap_share.sum() == pytest.approx(1.0)
        and by_b.bootstrap_share.loc[[8, 64]].sum() == 0
    )
    assert t.bootstrap_established.nunique() == 1
    assert 0 <= t.bootstrap_established.iloc[0] <= 1
    assert t.bootstrap_established.iloc[0] == pytest.approx(by_b.bootstrap_share.loc[16])
    assert (t.bstar_ci_low == 16).all() and (t.bstar_ci_high == 32).all()


def test_bootstrap_share_sums_below_one_when_replicates_lack_bstar():
    # Every batch size has one censored run of two: a replicate has no b* with chance (3/4)³.
    df = runs(
        [(b, s, 10, "censored" if s == 0 else "reached") for b in (8, 16, 32) for s in range(2)]
    )
    t = cbs.critical_batch_sizes(df, n_boot=4000)
    assert t.critical_batch_size.isna().all()
    assert t.bootstrap_share.sum() == pytest.approx(1 - 27 / 64, abs=0.03)
    assert t.bootstrap_share.sum() < 1 and 0 <= t.bootstrap_established.iloc[0] <= 1
    assert t.bstar_ci_low.iloc[0] == 8 and t.bstar_ci_high.iloc[0] == 32


def test_bstar_columns_fit_the_table_schema(tmp_path):
    from sgdsmooth import tables

    t = cbs.critical_batch_sizes(referee_cell([(2000, "censored"), (2000, "censored")]), n_boot=10)
    tables.write_table(t, tmp_path / "c.parquet", "critical_batch_size")
    back = tables.read_table(tmp_path / "c.parquet", "critical_batch_size")
    assert back.reason.iloc[0].startswith("b=16 censored") and back.established.dtype == bool


def test_cbs_max_steps_in_sfo_terms():
    from sgdsmooth.config import cbs_max_steps

    plain = {"cbs": {"max_steps": 100_000, "max_sfo": None}}
    assert (
        cbs_max_steps(plain, 16) == 100_000 and cbs_max_steps({"cbs": {"max_steps": 7}}, 512) == 7
    )
    sfo = {"cbs": {"max_steps": 100_000, "max_sfo": 32_000}}
    assert [cbs_max_steps(sfo, b) for b in (1, 16, 24, 512)] == [
        32_000,
        2000,
        1334,
        63,
    ]  # ⌈32000 / b⌉
    assert all(cbs_max_steps(sfo, b) * b >= 32_000 for b in (3, 7, 24, 1000))
    capped = {"cbs": {"max_steps": 1000, "max_sfo": 32_000}}
    assert [cbs_max_steps(capped, b) for b in (16, 64)] == [1000, 500]


def test_cell_settings_give_cbs_cells_the_sfo_budget():
    import yaml

    validate = pytest.importorskip("snakemake.utils").validate
    from pathlib import Path

    from sgdsmooth.config import RunConfig, cell_settings

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["cbs"].pop("max_sfo", None)
    config["cbs"]["max_steps"] = 5000
    validate(config, str(root / "config" / "schema.yaml"))
    assert config["cbs"]["max_sfo"] is None  # the schema's default
    assert cell_settings(config, "cbs", "sgd", 0.1, 0.0, 16)["max_steps"] == 5000
    config["cbs"]["max_sfo"] = 32_000
    validate(config, str(root / "config" / "schema.yaml"))
    steps = {b: cell_settings(config, "cbs", "sgd", 0.1, 0.0, b)["max_steps"] for b in (2, 16, 64)}
    assert steps == {2: 5000, 16: 2000, 64: 500}
    RunConfig.from_dict({**cell_settings(config, "cbs", "sgd", 0.1, 0.0, 64), "seed": 0})
    config["cbs"]["max_sfo"] = 0
    with pytest.raises(Exception, match="max_sfo|minimum"):
        validate(config, str(root / "config" / "schema.yaml"))


# -- collapsed runs (docs/method.md §8.9) ----------------------------------------------------
COLLAPSE = {"num_classes": 10, "loss_margin": 0.05, "accuracy_margin": 0.02}


def test_the_collapse_rule_by_hand():
    from sgdsmooth import collect

    chance = np.log(10)  # 2.30: the loss of a uniform guess over 10 classes
    loss = [0.3, 0.95 * chance - 1e-9, 0.95 * chance, 7.0, np.inf, np.nan]
    assert collect.collapsed(loss, **COLLAPSE).tolist() == [False, False, True, True, True, False]
    # Fixed-epoch runs: accuracy within 2 points of chance (0.10) collapses even at low loss.
    acc = [0.97, 0.121, 0.12, 0.5, 0.5, np.nan]
    assert collect.collapsed([0.1] * 6, acc, **COLLAPSE).tolist() == [
        False,
        False,
        True,
        False,
        False,
        False,
    ]
    frame = pd.DataFrame(
        {
            "status": ["ok", "ok", "diverged", "ok"],
            "train_loss": [0.2, 2.30, np.nan, 0.5],
            "test_accuracy": [0.9, 0.10, np.nan, 0.10],
        }
    )
    marked = collect.mark_collapsed(frame, COLLAPSE)
    assert marked.status.tolist() == ["ok", "collapsed", "diverged", "collapsed"]
    assert frame.status.tolist()[1] == "ok"  # a copy: the input is left as it was


def test_collapse_settings_come_from_the_config_with_the_schemas_defaults():
    import yaml

    from sgdsmooth import collect

    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "config" / "schema.yaml").read_text())
    props = schema["properties"]["collapse"]["properties"]
    assert {k: v["default"] for k, v in props.items()} == collect.COLLAPSE_DEFAULTS
    assert collect.collapse_settings({"dataset": "cifar100"}) == {
        "num_classes": 100,
        **collect.COLLAPSE_DEFAULTS,
    }
    got = collect.collapse_settings({"dataset": "digits", "collapse": {"loss_margin": 0.1}})
    assert got["num_classes"] == 10 and got["loss_margin"] == 0.1
    words = collect.collapse_words(got)
    assert "2.07" in words and "ln 10 = 2.30" in words and "12 %" in words


def nshb_cell(collapsed_at=(16,)):
    """NSHB runs, three seeds per batch size, SFO smallest at b = 16: but the b = 16 runs (and
    any in ``collapsed_at``) "reach ε" with a training loss back at chance (2.30)."""
    rows = []
    for b, steps in ((8, 8000), (16, 500), (32, 1500), (64, 600), (128, 400)):
        for s in range(3):
            dead = b in collapsed_at
            rows.append((b, s, steps + s, "reached", 2.3026 if dead else 0.02 + 0.01 * s))
    df = pd.DataFrame(rows, columns=["batch_size", "seed", "steps", "status", "train_loss"])
    return df.assign(
        optimizer="nshb",
        lr=50.0,
        beta=0.9,
        epsilon=0.5,
        sfo=df.steps * df.batch_size,
        reached=True,
        gate_bound=False,
    )


def test_collapsed_runs_that_reach_eps_are_flagged_excluded_and_counted():
    from sgdsmooth import collect

    raw = cbs.critical_batch_sizes(nshb_cell(), n_boot=50)
    assert (raw.critical_batch_size == 16).all()  # the artefact, without the rule

    runs = collect.mark_collapsed(nshb_cell(), COLLAPSE)
    assert (runs[runs.batch_size == 16].status == "collapsed").all()
    assert (runs[runs.batch_size != 16].status == "reached").all() and runs.reached.all()
    t = cbs.critical_batch_sizes(runs, n_boot=200).set_index("batch_size")
    # b* = 64 (SFO 38,464), not the collapsed b = 16 (8,016): 16 neither competes nor challenges.
    assert (t.critical_batch_size == 64).all() and t.established.all() and (t.reason == "").all()
    assert t.n_collapsed.loc[16] == 3 and t.n_collapsed.drop(16).eq(0).all()
    assert t.n_reached.loc[16] == 0 and t.n_runs.loc[16] == 3
    assert np.isnan(t.sfo_mean.loc[16]) and np.isnan(t.sfo_lower_mean.loc[16])
    assert t.bootstrap_share.loc[16] == 0 and t.bstar_ci_low.iloc[0] > 16
    assert t.sfo_mean.loc[64] == pytest.approx(64 * 601)


def test_an_optimizer_whose_runs_all_collapse_has_no_bstar(tmp_path):
    from sgdsmooth import collect, tables

    # SGD at η = 50: every run censored at chance loss (as the issue saw), or reaching ε dead.
    runs = nshb_cell(collapsed_at=(8, 16, 32, 64, 128)).assign(optimizer="sgd", beta=0.0)
    runs.loc[runs.batch_size < 64, ["status", "reached"]] = ["censored", False]
    runs = collect.mark_collapsed(runs, COLLAPSE)
    assert (runs.status == "collapsed").all()
    t = cbs.critical_batch_sizes(runs, n_boot=50)
    assert t.critical_batch_size.isna().all() and not (t.critical_batch_size == -1).any()
    assert not t.established.any() and not t.is_critical.any()
    assert (
        t.reason == "no batch size where every run reached ε (of 15 runs: 0 reached, 15 collapsed)"
    ).all()
    assert (t.n_collapsed == 3).all() and (t.n_censored == 0).all()
    # Written and read back: a null, not a number.
    tables.write_table(t, tmp_path / "c.parquet", "critical_batch_size")
    back = tables.read_table(tmp_path / "c.parquet", "critical_batch_size")
    assert back.critical_batch_size.isna().all() and (back.n_collapsed == 3).all()
    # No b*: no C² bound, no δ, in every downstream table.
    k2 = pd.DataFrame({"optimizer": ["sgd"], "lr": [50.0], "beta": [0.0], "k2": [np.nan]})
    k2 = k2.assign(k2_sup=np.nan, k2_mean=np.nan, k2_final=np.nan)
    v = cbs.variance_bounds(back, k2)
    assert v.critical_batch_size.isna().all() and v.c2_bound.isna().all()
    assert not v.established.any()
    d = cbs.delta_table(v, [8, 16, 32], fine_points=10)
    assert d.delta.isna().all() and not d.established.any()


def test_k2_leaves_out_the_runs_the_accuracy_table_marks_collapsed():
    from sgdsmooth import collect

    keys = {"optimizer": "shb", "lr": 50.0, "beta": 0.9, "batch_size": 16}
    k2 = pd.DataFrame([keys | {"seed": s, "mean": float(s)} for s in range(3)])
    acc = pd.DataFrame(
        [keys | {"seed": s, "status": st} for s, st in enumerate(["ok", "collapsed", "diverged"])]
    )
    assert collect.without_collapsed(k2, acc).seed.tolist() == [0, 2]
    assert collect.without_collapsed(k2, None).seed.tolist() == [0, 1, 2]


# -- rule (e) and the interpolated b* -------------------------------------------------------


def test_a_bstar_that_wins_too_few_replicates_is_undetermined_with_the_shares_printed():
    # b = 32 and 64 nearly tie (SGD at η = 0.4 on the default): the point estimate is 32, but
    # a resample of the seeds picks 64 often.
    df = runs(
        [
            *[(16, s, 1000, "reached") for s in range(3)],  # 16000
            *[(32, s, st, "reached") for s, st in enumerate((333, 355, 380))],  # 11,370.7
            *[(64, s, st, "reached") for s, st in enumerate((162, 180, 194))],  # 11,434.7
            *[(128, s, 120, "reached") for s in range(3)],  # 15360
        ]
    )
    t = cbs.critical_batch_sizes(df, n_boot=2000, winner_share=0.9)
    by_b = t.set_index("batch_size")
    assert (t.critical_batch_size == 32).all() and not t.established.any()
    won = by_b.bootstrap_share.loc[32]
    assert 0.3 < won < 0.9 and t.winner_share.iloc[0] == won
    assert (
        f"b* = 32 in only {100 * won:.0f} % of bootstrap replicates (< 90 %; 32: "
        in (t.reason.iloc[0])
    )
    assert f"64: {100 * by_b.bootstrap_share.loc[64]:.0f} %" in t.reason.iloc[0]
    # The same cell passes a lower share: the rule, not the data, made the difference.
    assert cbs.critical_batch_sizes(df, n_boot=2000, winner_share=0.3).established.all()


@pytest.mark.parametrize("vertex", [20.0, 32.0, 45.0])
def test_the_interpolated_minimum_is_the_vertex_of_a_parabola_in_log2_b(vertex):
    b = np.array([8, 16, 32, 64, 128])
    sfo = 1000 + 300 * (np.log2(b) - np.log2(vertex)) ** 2
    at = int(np.argmin(sfo))
    assert cbs.interpolated_minimum(b, sfo, np.ones(5, bool), at) == pytest.approx(vertex)
    # At an end of the grid, or beside a batch size without a mean SFO, there is none.
    assert np.isnan(cbs.interpolated_minimum(b, sfo, np.ones(5, bool), 0))
    ok = np.ones(5, bool)
    ok[at + 1] = False
    assert np.isnan(cbs.interpolated_minimum(b, sfo, ok, at))


def test_the_interpolated_bstar_interval_is_carried_into_the_c2_bound_and_delta():
    b = [16, 32, 64, 128]
    df = runs(
        [
            (
                bb,
                s,
                round((1000 + 300 * (np.log2(bb) - np.log2(40)) ** 2 + 40 * s) * 10 / bb),
                "reached",
            )
            for bb in b
            for s in range(4)
        ]
    )
    t = cbs.critical_batch_sizes(df, n_boot=500)
    row = t.iloc[0]
    assert row.critical_batch_size == 32 and 32 < row.bstar_interp < 64
    assert row.bstar_interp_ci_low <= row.bstar_interp <= row.bstar_interp_ci_high
    assert row.bstar_interp_replicates == 500
    k2 = pd.DataFrame(
        {"optimizer": ["sgd"], "lr": [0.1], "beta": [0.0]}
        | {k: [1.0] for k in ("k2", "k2_sup", "k2_mean", "k2_final")}
    )
    v = cbs.variance_bounds(t, k2).iloc[0]
    assert v.bstar_interval == "interpolated"
    for end, col in (("low", "c2_bound_low"), ("high", "c2_bound_high")):
        bstar = row[f"bstar_interp_ci_{end}"]
        assert v[col] == pytest.approx(theory.c2_upper_bound("sgd", bstar, 0.5, 0.1))
    d = cbs.delta_table(pd.DataFrame([v]), b, fine_points=5)
    d = d[d.grid == "config"]
    np.testing.assert_allclose(
        d.delta_ci_low, theory.degree_of_smoothing("sgd", 0.1, np.array(b), v.c2_bound_low)
    )
    assert (d.delta_ci_low <= d.delta_ci_high).all()
