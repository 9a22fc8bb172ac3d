"""The claims ledger: synthetic tables that flip each verdict, so no verdict is typed."""

import math

import numpy as np
import pandas as pd

from sgdsmooth import cbs, claims, tables

CFG = {
    "level": 0.95,
    "bootstrap": 200,
    "established_share": 0.8,
    "same_bstar_log2": 1,
    "train_loss_max": 0.1,
    "floor_share": 0.5,
    "article_delta_range": [0.2, 1.0],
}
GRID = [8, 16, 32, 64, 128, 256]


def rng():
    return np.random.default_rng(0)


def test_verdict_by_hand():
    assert claims.verdict(0.1, 0.3, above=0) == "held"
    assert claims.verdict(-0.3, -0.1, above=0) == "not held"
    assert claims.verdict(-0.1, 0.3, above=0) == "undetermined"
    assert claims.verdict(0.3, 0.5, above=0.2, below=1) == "held"
    assert claims.verdict(1.5, 3.0, above=0.2, below=1) == "not held"
    assert claims.verdict(0.5, 3.0, above=0.2, below=1) == "undetermined"
    assert claims.verdict(math.nan, 1.0, above=0) == "undetermined"


# -- critical batch sizes -----------------------------------------------------------------
def cbs_cell(opt, best, censored_below=0, lower=None):
    """Three seeds per batch size; SFO smallest at ``best`` (U-shaped in log b); batch sizes
    below ``censored_below`` censored with SFO lower bound ``lower``."""
    rows = []
    for b in GRID:
        for seed in range(3):
            sfo = 30000 * (1 + 0.5 * abs(math.log2(b / best))) + 10 * seed
            status = "reached"
            if b < censored_below:
                status, sfo = "censored", lower
            steps = math.ceil(sfo / b)
            rows.append(
                {
                    "optimizer": opt,
                    "lr": 0.1,
                    "beta": 0.0 if opt == "sgd" else 0.9,
                    "epsilon": 0.5,
                    "batch_size": b,
                    "seed": seed,
                    "steps": steps,
                    "sfo": steps * b,
                    "reached": status == "reached",
                    "status": status,
                }
            )
    return rows


def crit(*cells):
    return cbs.critical_batch_sizes(
        pd.DataFrame([r for c in cells for r in cbs_cell(*c)]), n_boot=100
    )


def by_claim(rows):
    return {r["claim"]: r for r in rows}


def test_bstar_exists_held_not_held_and_undetermined():
    rows = by_claim(
        claims.bstar_claims(crit(("sgd", 32), ("shb", 256), ("nshb", 32, 32, 20000)), 0.1, CFG)
    )
    assert rows["b* exists inside the batch grid (SGD)"]["verdict"] == "held"
    assert rows["b* exists inside the batch grid (SGD)"]["value"] == 32
    assert (
        rows["b* exists inside the batch grid (SHB)"]["verdict"] == "not held"
    )  # at the grid's end
    nshb = rows["b* exists inside the batch grid (NSHB)"]
    assert (
        nshb["verdict"] == "undetermined" and "censored" in nshb["note"]
    )  # lower bound 20000 could beat it


def test_an_edge_bstar_that_a_censored_batch_size_could_beat_is_undetermined_not_refuted():
    # b* = 256 at the grid's end, but b = 8 and 16 are censored below its SFO: the true b*
    # could lie inside the grid.
    rows = by_claim(claims.bstar_claims(crit(("sgd", 256, 32, 20000)), 0.1, CFG))
    sgd = rows["b* exists inside the batch grid (SGD)"]
    assert sgd["value"] == 256 and "largest" in sgd["note"] and sgd["verdict"] == "undetermined"


def test_bstar_order_claims_flip_with_the_data():
    held = by_claim(claims.bstar_claims(crit(("sgd", 32), ("shb", 128), ("nshb", 32)), 0.1, CFG))
    assert held["b*_SHB > b*_SGD"]["verdict"] == "held" and held["b*_SHB > b*_SGD"]["value"] == 2
    assert (
        held["b*_SGD ≈ b*_NSHB"]["verdict"] == "held"
        and "identically" in held["b*_SGD ≈ b*_NSHB"]["note"]
    )
    flipped = by_claim(claims.bstar_claims(crit(("sgd", 128), ("shb", 16), ("nshb", 16)), 0.1, CFG))
    assert flipped["b*_SHB > b*_SGD"]["verdict"] == "not held"
    assert (
        flipped["b*_SGD ≈ b*_NSHB"]["verdict"] == "not held"
        and flipped["b*_SGD ≈ b*_NSHB"]["value"] == 3
    )
    blocked = by_claim(
        claims.bstar_claims(crit(("sgd", 32, 32, 20000), ("shb", 128), ("nshb", 32)), 0.1, CFG)
    )
    assert blocked["b*_SHB > b*_SGD"]["verdict"] == "undetermined"


# -- δ against accuracy -------------------------------------------------------------------
def runs(
    accuracy_of_delta, deltas=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0), loss=0.01, seeds=3, band=0.0
):
    rows = []
    gen = np.random.default_rng(1)
    for i, d in enumerate(deltas):
        for s in range(seeds):
            rows.append(
                {
                    "optimizer": "sgd",
                    "lr": 0.1,
                    "beta": 0.0,
                    "batch_size": 2 ** (i + 3),
                    "seed": s,
                    "status": "ok",
                    "train_loss": loss,
                    "test_accuracy": accuracy_of_delta(d) + 0.002 * gen.normal(),
                    "delta": d,
                    "delta_low": d * (1 - band),
                    "delta_high": d * (1 + band),
                    "established": True,
                }
            )
    return pd.DataFrame(rows)


def concave(d):
    return 0.9 - 0.05 * math.log(d / 0.5) ** 2


def test_concavity_claim_flips():
    verdicts = lambda r: [row["verdict"] for row in claims.concavity_claims(r, CFG, 200, rng())]  # noqa: E731
    assert verdicts(runs(concave)) == ["held", "held"]
    assert verdicts(runs(lambda d: 0.5 + 0.05 * math.log(d) ** 2)) == [
        "not held",
        "not held",
    ]  # convex
    # Concave but peaking beyond the measured δ: monotone within the grid.
    assert verdicts(runs(lambda d: 0.9 - 0.01 * math.log(d / 50) ** 2))[0] == "not held"
    # No run fit the training set: the second statistic has nothing to stand on.
    assert verdicts(runs(concave, loss=0.5)) == ["held", "undetermined"]


def test_delta_without_an_established_bstar_is_no_evidence():
    r = runs(concave)
    r.loc[r.batch_size == 8, "delta"] = math.nan  # an optimizer without b* has no δ: no crash
    assert [row["verdict"] for row in claims.concavity_claims(r, CFG, 50, rng())] == [
        "held",
        "held",
    ]
    c = crit(("sgd", 32), ("shb", 128), ("nshb", 32))
    unsettled = r.assign(established=False)
    delta = unsettled.drop_duplicates("batch_size")[
        ["optimizer", "lr", "beta", "batch_size", "delta", "delta_low", "delta_high", "established"]
    ].assign(grid="config")
    acc = r[
        ["optimizer", "lr", "beta", "batch_size", "seed", "status", "train_loss", "test_accuracy"]
    ]
    ledger = claims.ledger(
        c,
        variance(1.0),
        delta,
        acc,
        None,
        lr=0.1,
        batch_sizes=GRID,
        adaptive=True,
        cfg=CFG,
        n_boot=50,
    ).set_index("claim")
    concave_rows = ledger[ledger.index.str.startswith("accuracy is concave")]
    assert (concave_rows.verdict == "undetermined").all() and (concave_rows.n == 0).all()
    assert ledger.loc["the best δ lies in the article's range (SGD)"].verdict == "undetermined"


def test_best_delta_claim_flips():
    held = claims.best_delta_claims(runs(concave), CFG, 200, rng())[0]
    assert held["verdict"] == "held" and held["value"] == 0.5
    out = claims.best_delta_claims(
        runs(lambda d: 0.9 - 0.05 * math.log(d / 5) ** 2), CFG, 200, rng()
    )[0]
    assert out["verdict"] == "not held" and out["value"] == 5
    # A K² band wide enough to reach outside the range leaves it open.
    wide = claims.best_delta_claims(runs(concave, band=0.9), CFG, 200, rng())[0]
    assert wide["verdict"] == "undetermined"


def variance(k2, established=True):
    return pd.DataFrame(
        [
            {
                "optimizer": "shb",
                "lr": 0.1,
                "beta": 0.9,
                "c2_bound": 1.0,
                "k2": k2,
                "k2_sup": 2 * k2,
                "k2_mean": k2,
                "k2_final": k2 / 2,
                "k2_n_runs": 9,
                "established": established,
            }
        ]
    )


def test_floor_claim_flips_with_k2():
    big = claims.floor_claim(variance(1.0), 0.1, GRID, CFG)[0]
    assert big["verdict"] == "held" and big["value"] > 0.5 and "identity" in big["note"]
    assert claims.floor_claim(variance(1e-7), 0.1, GRID, CFG)[0]["verdict"] == "not held"
    assert (
        claims.floor_claim(variance(1.0, established=False), 0.1, GRID, CFG)[0]["verdict"]
        == "undetermined"
    )
    unmeasured = variance(math.nan).assign(k2_n_runs=math.nan)  # no K² recorded at all
    assert claims.floor_claim(unmeasured, 0.1, GRID, CFG)[0]["verdict"] == "undetermined"


def test_sharpness_claim_flips():
    n = 12
    gen = np.random.default_rng(3)
    acc = np.linspace(0.6, 0.9, n)
    base = pd.DataFrame(
        {
            "optimizer": "sgd",
            "lr": 0.1,
            "beta": 0.0,
            "batch_size": np.arange(n) + 8,
            "seed": 0,
            "test_accuracy": acc,
        }
    )
    accuracy = base.assign(train_loss=0.01, status="ok")
    delta_wins = base.assign(
        delta=acc, sharpness=gen.permutation(acc), sharpness_plain=gen.permutation(acc)
    )
    rows = claims.sharpness_claims(delta_wins, accuracy, True, CFG, 200, rng())
    assert [r["verdict"] for r in rows] == ["held"] * 4
    assert "adaptive" in rows[0]["claim"] and "plain" in rows[2]["claim"]
    sharp_wins = base.assign(delta=gen.permutation(acc), sharpness=-acc, sharpness_plain=-acc)
    assert {
        r["verdict"] for r in claims.sharpness_claims(sharp_wins, accuracy, True, CFG, 200, rng())
    } == {"not held"}
    plain_first = claims.sharpness_claims(delta_wins, accuracy, False, CFG, 200, rng())
    assert "plain" in plain_first[0]["claim"]
    assert claims.sharpness_claims(None, accuracy, True, CFG, 200, rng()) == []


def test_the_ledger_is_a_claims_table(tmp_path):
    c = crit(("sgd", 32), ("shb", 128), ("nshb", 32))
    r = runs(concave)
    delta = r.drop_duplicates("batch_size")[
        ["optimizer", "lr", "beta", "batch_size", "delta", "delta_low", "delta_high", "established"]
    ].assign(grid="config")
    acc = r[
        ["optimizer", "lr", "beta", "batch_size", "seed", "status", "train_loss", "test_accuracy"]
    ]
    ledger = claims.ledger(
        c,
        variance(1.0),
        delta,
        acc,
        None,
        lr=0.1,
        batch_sizes=GRID,
        adaptive=True,
        cfg=CFG,
        n_boot=50,
    )
    assert set(ledger.verdict) <= set(claims.VERDICTS) and len(ledger) == 3 + 2 + 2 + 1 + 1
    tables.write_table(ledger, tmp_path / "claims.parquet", "claims")
    assert (
        tables.read_table(tmp_path / "claims.parquet", "claims").claim.tolist()
        == ledger.claim.tolist()
    )


def test_an_optimizer_whose_runs_all_collapsed_has_no_bstar_and_no_verdict():
    dead = pd.DataFrame(cbs_cell("sgd", 32)).assign(status="collapsed")  # e.g. η = 50
    c = cbs.critical_batch_sizes(
        pd.concat([dead, pd.DataFrame(cbs_cell("shb", 128))], ignore_index=True), n_boot=100
    )
    sgd = c[c.optimizer == "sgd"]
    assert sgd.critical_batch_size.isna().all() and (sgd.n_collapsed == 3).all()
    rows = by_claim(claims.bstar_claims(c, 0.1, CFG))
    exists = rows["b* exists inside the batch grid (SGD)"]
    assert exists["verdict"] == "undetermined" and math.isnan(exists["value"])
    assert "18 collapsed" in exists["note"]
    gap = rows["b*_SHB > b*_SGD"]
    assert gap["verdict"] == "undetermined" and math.isnan(gap["value"])
    assert gap["note"] == "a b* is not established"
    assert rows["b* exists inside the batch grid (SHB)"]["value"] == 128


def test_collapsed_runs_keep_their_chance_accuracy_in_the_accuracy_claims():
    """A collapsed run has no part in b* or δ, but its accuracy is a result (collect.finished):
    the δ–accuracy and δ–sharpness claims count it; a diverged run, which has no accuracy, not."""
    c = crit(("sgd", 32), ("shb", 128), ("nshb", 32))
    r = runs(concave)
    dead = r[r.batch_size == 8].assign(status="collapsed", test_accuracy=0.1, train_loss=2.3)
    lost = (
        r[r.batch_size == 16]
        .iloc[:1]
        .assign(status="diverged", test_accuracy=np.nan, train_loss=np.nan)
    )
    kept = r[(r.batch_size != 8) & ~r.index.isin(lost.index)]
    acc = pd.concat([kept, dead, lost], ignore_index=True)
    delta = r.drop_duplicates("batch_size")[
        ["optimizer", "lr", "beta", "batch_size", "delta", "delta_low", "delta_high", "established"]
    ].assign(grid="config")
    var = pd.concat(
        [variance(1.0), pd.DataFrame([{"optimizer": "sgd", "lr": 0.1, "beta": 0.0}])]
    ).assign(established=True)
    # Figure 8's networks: one per accuracy run, sharpness that would track accuracy.
    sharp = acc.merge(delta[["batch_size", "delta"]], on="batch_size", suffixes=("_run", ""))[
        ["optimizer", "lr", "beta", "batch_size", "seed", "test_accuracy", "delta"]
    ]
    sharp = sharp.assign(sharpness=-sharp.test_accuracy, sharpness_plain=-sharp.test_accuracy)

    def ledger(accuracy):
        cols = ["optimizer", "lr", "beta", "batch_size", "seed", "status", "train_loss"]
        return claims.ledger(
            c,
            var,
            delta,
            accuracy[cols + ["test_accuracy"]],
            sharp,
            lr=0.1,
            batch_sizes=GRID,
            adaptive=True,
            cfg=CFG,
            n_boot=50,
        ).set_index("claim")

    with_dead = ledger(acc)
    n = len(r) - 1  # all but the diverged run
    concave_all = "accuracy is concave in δ with its peak inside the grid (all finished runs)"
    assert with_dead.loc[concave_all].n == n
    sharpness_rows = with_dead[with_dead.index.str.startswith("δ predicts accuracy better")]
    assert (sharpness_rows.loc[sharpness_rows.index.str.contains("all networks")].n == n).all()
    # Were the collapsed runs dropped, the claims would rest on fewer runs: they do count.
    without = ledger(acc[acc.status != "collapsed"])
    assert without.loc[concave_all].n == n - len(dead)
