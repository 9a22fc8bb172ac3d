import numpy as np
import pandas as pd
import pytest

from sgdsmooth import correlate


def networks(cells=None, **columns) -> pd.DataFrame:
    """A sharpness-like frame: the given columns, and each row's cell (SGD at η = 0.1, β = 0;
    ``cells`` its batch sizes, each row a cell of its own by default)."""
    df = pd.DataFrame(columns)
    return df.assign(
        optimizer="sgd",
        lr=0.1,
        beta=0.0,
        batch_size=np.arange(len(df)) if cells is None else cells,
    )


def test_perfectly_monotone_and_concave_data():
    delta = np.geomspace(0.01, 10, 30)
    acc = 0.9 - 0.02 * (np.log(delta) - np.log(0.5)) ** 2  # peak at δ = 0.5
    sharp = 1 / delta  # strictly decreasing in δ
    df = networks(delta=delta, sharpness=sharp, sharpness_plain=30 * sharp, test_accuracy=acc)
    t = correlate.correlations(df, n_boot=100).set_index(["predictor", "method"])
    assert t.loc[("delta", "quadratic_ln_delta_curvature"), "coefficient"] == pytest.approx(-0.02)
    assert t.loc[("delta", "quadratic_ln_delta_vertex"), "coefficient"] == pytest.approx(0.5)
    # Spearman of a concave peak centred in the range: small; of acc with 1/δ: the mirror image.
    assert t.loc[("sharpness", "spearman"), "coefficient"] == pytest.approx(
        -t.loc[("delta", "spearman"), "coefficient"]
    )
    # Every predictor gets both rank statistics; plain sharpness, a multiple of adaptive here,
    # the same ones.
    assert {"sharpness", "sharpness_plain", "delta"} <= set(t.xs("kendall", level="method").index)
    assert set(t.xs("sharpness_plain", level="predictor").index) == {"spearman", "kendall"}
    coef = t.coefficient
    assert coef[("sharpness_plain", "spearman")] == pytest.approx(coef[("sharpness", "spearman")])
    lo, hi = t.loc[("delta", "kendall"), ["ci_low", "ci_high"]]
    assert lo <= t.loc[("delta", "kendall"), "coefficient"] <= hi


def test_rank_correlation_by_hand():
    df = networks(
        delta=[1, 2, 3, 4],
        sharpness=[4, 3, 1, 2],
        sharpness_plain=[1, 3, 2, 4],
        test_accuracy=[0.1, 0.2, 0.3, 0.4],
    )
    t = correlate.correlations(df, n_boot=10).set_index(["predictor", "method"])
    assert t.loc[("delta", "spearman"), "coefficient"] == pytest.approx(1.0)
    # Ranks (4,3,1,2) vs (1,2,3,4): d² = 9+1+4+4 = 18 → ρ = 1 − 6·18/(4·15) = −0.8
    assert t.loc[("sharpness", "spearman"), "coefficient"] == pytest.approx(-0.8)
    # Kendall: of 6 pairs 1 concordant, 5 discordant → τ = −4/6
    assert t.loc[("sharpness", "kendall"), "coefficient"] == pytest.approx(-2 / 3)
    # Plain sharpness from its own column: ranks (1,3,2,4), d² = 0+1+1+0 = 2 → ρ = 0.8;
    # τ = (5 − 1)/6
    assert t.loc[("sharpness_plain", "spearman"), "coefficient"] == pytest.approx(0.8)
    assert t.loc[("sharpness_plain", "kendall"), "coefficient"] == pytest.approx(2 / 3)


def test_partial_spearman_is_the_correlation_of_rank_residuals():
    """By hand: regress the ranks of y and of x on the ranks of z, correlate the residuals."""
    from scipy import stats

    gen = np.random.default_rng(0)
    z = gen.normal(size=200)
    x = z + gen.normal(size=200)
    y = 2 * z + 0.5 * x + gen.normal(size=200)
    ry, rx, rz = (stats.rankdata(v) for v in (y, x, z))

    def residual(a):
        return a - np.polyval(np.polyfit(rz, a, 1), rz)

    expected = np.corrcoef(residual(ry), residual(rx))[0, 1]
    assert correlate.partial_spearman(y, x, z) == pytest.approx(expected)
    # y driven by z alone: nothing left once z is accounted for, though x and y correlate.
    y0 = z + 0.01 * gen.normal(size=200)
    assert stats.spearmanr(y0, x)[0] > 0.5 and abs(correlate.partial_spearman(y0, x, z)) < 0.15
    # x a monotone function of z: no partial correlation to speak of.
    assert np.isnan(correlate.partial_spearman(y, np.exp(z), z))


def test_cell_resample_draws_whole_cells_and_seeds_within_them():
    cells = np.repeat(np.array(["a", "b", "c", "d"]), [3, 3, 2, 4])
    gen = np.random.default_rng(1)
    sizes = {"a": 3, "b": 3, "c": 2, "d": 4}
    drawn_cells = set()
    for _ in range(200):
        i = correlate.cell_resample(cells, gen)
        picked = cells[i]
        # A drawn cell brings as many rows as it has (its seeds, resampled), and only its own.
        blocks = [picked[k : k + 1][0] for k in range(len(picked))]
        counts = pd.Series(blocks).value_counts()
        for cell, n in counts.items():
            assert n % sizes[cell] == 0
        assert counts.sum() == len(i)
        drawn_cells.add(len(counts))
    # Four cells are drawn each time (with replacement): sometimes fewer than four distinct.
    assert min(drawn_cells) < 4 and max(drawn_cells) == 4


def seeds_alike_cells_apart(n_cells=8, seeds=5):
    """Cells whose seeds are near-identical but whose outcomes differ from cell to cell and
    follow δ only loosely: 40 rows that hold the information of 8."""
    gen = np.random.default_rng(3)
    delta = np.repeat(np.geomspace(0.05, 2, n_cells), seeds)
    effect = np.repeat(gen.normal(0, 0.05, n_cells), seeds)
    noise = gen.normal(0, 1e-4, n_cells * seeds)
    acc = 0.6 + 0.02 * np.log(delta) + effect + noise
    sharp = 1 / delta + np.repeat(gen.normal(0, 2, n_cells), seeds) + noise
    return dict(delta=delta, sharpness=sharp, sharpness_plain=sharp, test_accuracy=acc)


def test_intervals_resample_cells_not_rows_as_if_independent():
    """The same rows, labelled once as 8 cells of 5 near-identical seeds and once as 40 cells
    of one: the coefficients (on all rows) agree, the intervals do not. Over 8 cells the
    interval is much wider than a bootstrap of 40 independent rows would make it."""
    columns = seeds_alike_cells_apart()
    grouped = networks(cells=np.repeat(2 ** np.arange(8), 5), **columns)
    as_rows = networks(**columns)
    t_cells = correlate.correlations(grouped, n_boot=400).set_index(["predictor", "method"])
    t_rows = correlate.correlations(as_rows, n_boot=400).set_index(["predictor", "method"])
    assert np.allclose(t_cells.coefficient, t_rows.coefficient, equal_nan=True)
    width = lambda t: t.ci_high - t.ci_low  # noqa: E731
    for key in [("delta", "spearman"), ("delta", "kendall"), ("sharpness", "spearman")]:
        assert width(t_cells)[key] > 1.5 * width(t_rows)[key], key
    curvature = ("delta", "quadratic_ln_delta_curvature")
    assert width(t_cells)[curvature] > 1.5 * width(t_rows)[curvature]
    assert (t_cells.n == 40).all() and (t_rows.n == 40).all()
    assert (t_cells.n_cells == 8).all() and (t_rows.n_cells == 40).all()


def test_n_cells_counts_configurations_and_n_counts_rows():
    """A cell is optimizer × η × β × b: cells that differ in one of them only are apart. A row
    without a value leaves ``n`` one short; a cell with none leaves ``n_cells`` one short."""
    cells = pd.DataFrame(
        [
            ("sgd", 0.1, 0.0, 64),
            ("sgd", 0.1, 0.0, 128),
            ("sgd", 1.0, 0.0, 64),
            ("shb", 0.1, 0.9, 64),
            ("shb", 0.1, 0.5, 64),
        ],
        columns=list(correlate.CELL),
    )
    df = cells.loc[cells.index.repeat(3)].reset_index(drop=True)  # three seeds each
    gen = np.random.default_rng(0)
    df = df.assign(
        delta=np.repeat([0.1, 0.2, 0.4, 0.8, 1.6], 3),
        sharpness=gen.uniform(1, 2, len(df)),
        sharpness_plain=gen.uniform(1, 2, len(df)),
        test_accuracy=gen.uniform(0.5, 0.6, len(df)),
    )
    df.loc[0, "sharpness"] = np.nan  # one network of the first cell
    df.loc[12:14, "sharpness_plain"] = np.nan  # every network of the last cell
    t = correlate.correlations(df, n_boot=20)
    for pred, n, n_cells in [("delta", 15, 5), ("sharpness", 14, 5), ("sharpness_plain", 12, 4)]:
        mine = t[t.predictor == pred]
        assert set(mine.n) == {n} and set(mine.n_cells) == {n_cells}, pred


def test_cell_bootstrap_counts_only_the_replicates_with_a_value():
    """Replicates whose statistic is NaN are left out of the interval and of the count, and
    are drawn all the same: the count is exact against a replay of the same draws."""
    cells = np.repeat(np.array(["a", "b", "c"]), [2, 3, 1])
    x = np.repeat([1.0, 2.0, 3.0], [2, 3, 1])
    stat = lambda i: np.nan if np.ptp(x[i]) == 0 else float(np.mean(x[i]))  # noqa: E731
    lo, hi, valid = correlate.cell_bootstrap(stat, cells, 300, np.random.default_rng(5))
    replay = np.random.default_rng(5)
    kept = [v for v in (stat(correlate.cell_resample(cells, replay)) for _ in range(300)) if v == v]
    assert 0 < valid == len(kept) < 300  # about 8/9 of them: all three draws one cell is 1/9
    assert (lo, hi) == (np.percentile(kept, 2.5), np.percentile(kept, 97.5))
    lo, hi, valid = correlate.cell_bootstrap(lambda i: np.nan, cells, 10, replay)
    assert np.isnan(lo) and np.isnan(hi) and valid == 0  # none with a value: no interval


def test_replicates_where_a_variable_is_constant_are_counted_not_dropped_silently():
    """Three cells, δ constant within each: a replicate that draws one cell thrice has a
    constant δ and no rank coefficient (1/9 of them); one that misses a cell has fewer than
    three distinct δ and no curvature (7/9 of them). ``n_boot_valid`` says how many are left;
    the vertex, which has no interval, none."""
    gen = np.random.default_rng(1)
    delta = np.repeat([0.1, 0.5, 2.0], 4)
    acc = 0.6 - 0.05 * np.log(delta / 0.5) ** 2 + gen.normal(0, 0.01, 12)
    df = networks(
        cells=np.repeat([16, 64, 256], 4),
        delta=delta,
        sharpness=gen.uniform(1, 2, 12),
        sharpness_plain=gen.uniform(1, 2, 12),
        test_accuracy=acc,
    )
    n_boot = 900
    t = correlate.correlations(df, n_boot=n_boot).set_index(["predictor", "method"])
    valid = t.n_boot_valid
    assert abs(valid[("delta", "spearman")] - n_boot * 8 / 9) < 60
    assert abs(valid[("delta", "kendall")] - n_boot * 8 / 9) < 60
    assert abs(valid[("delta", "quadratic_ln_delta_curvature")] - n_boot * 2 / 9) < 60
    assert valid[("delta", "quadratic_ln_delta_vertex")] == 0
    drawn = t.n_boot  # out of how many: every replicate drawn, none for the fitted peak
    assert drawn[("delta", "quadratic_ln_delta_vertex")] == 0
    assert (drawn.drop(("delta", "quadratic_ln_delta_vertex")) == n_boot).all()
    # sharpness varies within every cell: every replicate has a value
    assert valid[("sharpness", "spearman")] == n_boot
