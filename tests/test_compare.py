"""The rerun check: a changed verdict, a number that moved beyond its interval, a b* that moved
and a mean that moved beyond its standard errors are each reported; nothing is dropped."""

import numpy as np
import pandas as pd

from sgdsmooth import compare


def ledger(rows):
    cols = ["test", "kind", "optimizer", "claim", "value", "ci_low", "ci_high", "verdict"]
    return pd.DataFrame(rows, columns=cols)


def test_a_changed_verdict_and_a_value_outside_its_interval_are_reported():
    old = ledger(
        [
            ["bstar_exists", "finding", "sgd", "x", 32, 32, 64, "held"],
            ["concave_all", "finding", "", "y", -0.10, -0.14, -0.06, "held"],
            ["gone", "finding", "", "z", 1, 0, 2, "held"],
        ]
    )
    new = ledger(
        [
            ["bstar_exists", "finding", "sgd", "x", 64, 32, 64, "undetermined"],
            ["concave_all", "finding", "", "y", -0.02, -0.05, 0.01, "undetermined"],
            ["fresh", "consistency", "nshb", "w", 1, 0, 2, "inconsistent"],
        ]
    )
    c = compare.claims(new, old).set_index("key")
    assert c.loc["bstar_exists:sgd"].changed and c.loc["concave_all"].changed
    assert c.loc["bstar_exists:sgd"].now_in_then == "yes"  # 64 inside [32, 64]
    assert c.loc["concave_all"].now_in_then == "NO" and c.loc["concave_all"].then_in_now == "NO"
    assert c.loc["gone"].only == "then" and c.loc["fresh:nshb"].only == "now"
    text = compare.report({"claims": new}, {"claims": old}, "archive/x")
    assert "2 of the 2 ledger rows in both builds changed" in text
    assert "Rows only in the archive: gone" in text and "fresh:nshb" in text
    assert "Outside the archived interval: 1" in text


def test_an_archived_ledger_without_keys_is_matched_by_its_claim_text():
    old = pd.DataFrame(
        {
            "claim": [
                "b* exists inside the batch grid (NSHB)",
                "b*_SHB > b*_SGD",
                "δ predicts accuracy better than plain sharpness (training loss ≤ 0.1)",
                "δ_SHB has a b-independent floor",
            ],
            "value": [32.0, 1.0, 0.2, 0.95],
            "ci_low": [32.0, 1.0, -0.5, 0.74],
            "ci_high": [32.0, 1.0, 0.7, 0.99],
            "verdict": ["held", "held", "undetermined", "held"],
        }
    )
    keys = [compare.claim_key(r) for r in old.itertuples()]
    assert keys == [
        "bstar_exists:nshb",
        "bstar_order",
        "delta_vs_plain_sharpness_fit",
        "floor_share:shb",
    ]


def test_a_bstar_that_moves_or_loses_establishment_is_reported():
    def crit(b, established, lo, hi):
        return pd.DataFrame(
            {
                "optimizer": ["sgd"],
                "lr": [0.4],
                "critical_batch_size": [b],
                "established": [established],
                "bstar_ci_low": [lo],
                "bstar_ci_high": [hi],
            }
        )

    b = compare.bstar(crit(64.0, True, 32.0, 64.0), crit(32.0, True, 32.0, 64.0)).iloc[0]
    assert b.changed and b.now_in_then == "yes"  # the flip the issue saw: inside the interval
    b = compare.bstar(crit(32.0, False, 32.0, 64.0), crit(32.0, True, 32.0, 32.0)).iloc[0]
    assert b.changed  # same b*, no longer established
    none = crit(np.nan, False, np.nan, np.nan)
    assert not compare.bstar(none, none).iloc[0].changed  # no b* in either build


def test_a_mean_is_flagged_only_when_it_moves_beyond_its_standard_errors():
    gen = np.random.default_rng(0)

    def runs(shift):
        return pd.DataFrame(
            {
                "optimizer": "sgd",
                "lr": 0.1,
                "batch_size": np.repeat([16, 32], 5),
                "sfo": np.r_[1000 + 10 * gen.normal(size=5), 2000 + 10 * gen.normal(size=5)]
                + np.repeat([shift, 0], 5),
            }
        )

    m = compare.means(runs(200.0), runs(0.0), ["optimizer", "lr", "batch_size"], "sfo")
    assert m.set_index("batch_size").flag.to_dict() == {16: True, 32: False}
