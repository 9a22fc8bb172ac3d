import numpy as np
import pandas as pd
import pytest

from sgdsmooth import correlate


def test_perfectly_monotone_and_concave_data():
    delta = np.geomspace(0.01, 10, 30)
    acc = 0.9 - 0.02 * (np.log(delta) - np.log(0.5)) ** 2  # peak at δ = 0.5
    sharp = 1 / delta  # strictly decreasing in δ
    df = pd.DataFrame(
        {"delta": delta, "sharpness": sharp, "sharpness_plain": 30 * sharp, "test_accuracy": acc}
    )
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
    df = pd.DataFrame(
        {
            "delta": [1, 2, 3, 4],
            "sharpness": [4, 3, 1, 2],
            "sharpness_plain": [1, 3, 2, 4],
            "test_accuracy": [0.1, 0.2, 0.3, 0.4],
        }
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
