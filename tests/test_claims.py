"""The claims ledger: synthetic tables that flip each verdict, so no verdict is typed."""

import math

import numpy as np
import pandas as pd
import pytest

from sgdsmooth import cbs, claims, tables, theory

CFG = {
    "level": 0.95,
    "bootstrap": 200,
    "established_share": 0.8,
    "same_bstar_log2": 1,
    "train_loss_max": 0.1,
    "floor_share": 0.5,
    "article_delta_range": [0.2, 1.0],
    "bstar_share": 0.9,
    "negligible_rho": 0.2,
    "consistency_factor": 2,
    "early_epoch": 1,
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


def keyed(ledger: pd.DataFrame) -> pd.DataFrame:
    """A ledger indexed like :func:`by_claim`."""
    key = ledger.test + np.where(ledger.optimizer != "", ":" + ledger.optimizer, "")
    assert key.is_unique
    return ledger.set_index(key)


def by_claim(rows):
    """Rows by test and optimizer: "bstar_exists:sgd", "bstar_order"."""
    out = {}
    for r in rows:
        key = r["test"] + (f":{r['optimizer']}" if r["optimizer"] else "")
        assert key not in out, key
        out[key] = r
    return out


def test_bstar_exists_held_not_held_and_undetermined():
    rows = by_claim(
        claims.bstar_claims(crit(("sgd", 32), ("shb", 256), ("nshb", 32, 32, 20000)), 0.1, CFG)
    )
    assert rows["bstar_exists:sgd"]["verdict"] == "held"
    assert rows["bstar_exists:sgd"]["value"] == 32
    assert rows["bstar_exists:shb"]["verdict"] == "not held"  # at the grid's end
    nshb = rows["bstar_exists:nshb"]
    assert (
        nshb["verdict"] == "undetermined" and "censored" in nshb["note"]
    )  # lower bound 20000 could beat it


def test_an_edge_bstar_that_a_censored_batch_size_could_beat_is_undetermined_not_refuted():
    # b* = 256 at the grid's end, but b = 8 and 16 are censored below its SFO: the true b*
    # could lie inside the grid.
    rows = by_claim(claims.bstar_claims(crit(("sgd", 256, 32, 20000)), 0.1, CFG))
    sgd = rows["bstar_exists:sgd"]
    assert sgd["value"] == 256 and "largest" in sgd["note"] and sgd["verdict"] == "undetermined"


def test_bstar_order_claims_flip_with_the_data():
    held = by_claim(claims.bstar_claims(crit(("sgd", 32), ("shb", 128), ("nshb", 32)), 0.1, CFG))
    assert held["bstar_order"]["verdict"] == "held" and held["bstar_order"]["value"] == 2
    assert held["bstar_same"]["verdict"] == "held"
    flipped = by_claim(claims.bstar_claims(crit(("sgd", 128), ("shb", 16), ("nshb", 16)), 0.1, CFG))
    assert flipped["bstar_order"]["verdict"] == "not held"
    assert flipped["bstar_same"]["verdict"] == "not held" and flipped["bstar_same"]["value"] == 3
    blocked = by_claim(
        claims.bstar_claims(crit(("sgd", 32, 32, 20000), ("shb", 128), ("nshb", 32)), 0.1, CFG)
    )
    assert blocked["bstar_order"]["verdict"] == "undetermined"


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
    # Rows: pooled on all runs, pooled on the runs that fit, then per optimizer (SGD alone).
    verdicts = lambda r: [row["verdict"] for row in claims.concavity_claims(r, CFG, 200, rng())]  # noqa: E731
    assert verdicts(runs(concave)) == ["held", "held", "held"]
    assert verdicts(runs(lambda d: 0.5 + 0.05 * math.log(d) ** 2)) == ["not held"] * 3  # convex
    # Concave but peaking beyond the measured δ: monotone within the grid.
    assert verdicts(runs(lambda d: 0.9 - 0.01 * math.log(d / 50) ** 2))[0] == "not held"
    # No run fit the training set: the second statistic has nothing to stand on.
    assert verdicts(runs(concave, loss=0.5)) == ["held", "undetermined", "held"]


def test_delta_without_an_established_bstar_is_no_evidence():
    r = runs(concave)
    r.loc[r.batch_size == 8, "delta"] = math.nan  # an optimizer without b* has no δ: no crash
    assert [row["verdict"] for row in claims.concavity_claims(r, CFG, 50, rng())] == ["held"] * 3
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
    )
    ledger = keyed(ledger)
    concave_rows = ledger[ledger.index.str.startswith("concave")]
    assert (concave_rows.verdict == "undetermined").all() and (concave_rows.n == 0).all()
    assert ledger.loc["best_delta:sgd"].verdict == "undetermined"


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
                "k2_n_points": 36,
                "k2_sup_source": "b = 256, seed 0, epoch 2",
                "established": established,
                "critical_batch_size": 64.0,
                "epsilon": 0.5,
                "bstar_low": 64.0,
                "bstar_high": 64.0,
                "bstar_interval": "grid",
                "c2_bound_low": 1.0,
                "c2_bound_high": 1.0,
            }
        ]
    )


def test_floor_claim_flips_with_k2():
    big = claims.floor_claim(variance(1.0), 0.1, GRID, CFG)[0]
    assert big["verdict"] == "held" and big["value"] > 0.5 and big["kind"] == "finding"
    # The sup (2.0) decides; the mean and the final are the sensitivity, in the note.
    assert big["value"] == pytest.approx(theory.floor_share(max(GRID), 1.0, 0.9, 2.0))
    assert "mean $K^2$ 1 gives" in big["note"] and "final $K^2$ 0.5 gives" in big["note"]
    # The K² below which it fails is printed, and a K² just below it does fail.
    k2_min = theory.k2_for_floor_share(0.5, max(GRID), 1.0, 0.9)
    assert f"below {k2_min:.3g}" in big["fails_if"]
    assert claims.floor_claim(variance(0.9 * k2_min / 2), 0.1, GRID, CFG)[0]["verdict"] == (
        "not held"
    )
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
    # b*: 3 + 2; concavity: pooled twice and SGD alone; the floor; SGD's best δ; SHB's floor
    # identity; and the four consistency rows of the one optimizer in ``variance`` (SHB).
    assert len(ledger) == 5 + 3 + 1 + 1 + 1 + 4
    assert set(ledger.kind) == set(claims.KINDS)
    verdicts = {
        "finding": {"held", "not held", "undetermined"},
        "identity": {"identity"},
        "consistency": {"consistent", "inconsistent", "undetermined"},
    }
    for kind, allowed in verdicts.items():
        assert set(ledger[ledger.kind == kind].verdict) <= allowed, kind
    # Every finding says what would have failed it.
    assert (ledger[ledger.kind == "finding"].fails_if.str.len() > 10).all()
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
    exists = rows["bstar_exists:sgd"]
    assert exists["verdict"] == "undetermined" and math.isnan(exists["value"])
    assert "18 collapsed" in exists["note"]
    gap = rows["bstar_order"]
    assert gap["verdict"] == "undetermined" and math.isnan(gap["value"])
    assert gap["note"] == "a $b^*$ is not established"
    assert rows["bstar_exists:shb"]["value"] == 128


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
        ).pipe(keyed)

    with_dead = ledger(acc)
    n = len(r) - 1  # all but the diverged run
    concave_all = "concave_all"
    assert with_dead.loc[concave_all].n == n
    sharpness_rows = with_dead[with_dead.index.str.startswith("delta_vs_")]
    assert (sharpness_rows.loc[sharpness_rows.index.str.endswith("_all")].n == n).all()
    # Were the collapsed runs dropped, the claims would rest on fewer runs: they do count.
    without = ledger(acc[acc.status != "collapsed"])
    assert without.loc[concave_all].n == n - len(dead)


# -- kinds: findings that can fail, identities that cannot, and the abstract's counts ---------
def steps_runs(accuracy_of, seeds=10, grid=(8, 16, 32, 64, 128, 256, 512, 1024)):
    """Three optimizers on one batch grid with different δ at every b (δ = c_opt/√b) and one
    number of steps per b; test accuracy from ``accuracy_of(delta, b)`` plus small noise."""
    gen = np.random.default_rng(5)
    rows = []
    for opt, scale in (("sgd", 1.0), ("shb", 3.0), ("nshb", 0.4)):
        for b in grid:
            d = scale / math.sqrt(b)
            for s in range(seeds):
                rows.append(
                    {
                        "optimizer": opt,
                        "lr": 0.1,
                        "beta": 0.0 if opt == "sgd" else 0.9,
                        "batch_size": b,
                        "seed": s,
                        "epochs": 8,
                        "status": "ok",
                        "train_loss": 0.01,
                        "test_accuracy": accuracy_of(d, b) + 0.01 * gen.normal(),
                        "delta": d,
                        "established": True,
                    }
                )
    return pd.DataFrame(rows)


def test_delta_beyond_the_number_of_steps_flips():
    n_train = 4096  # steps = 8·⌊4096/b⌋
    # Accuracy set by the steps alone: δ adds nothing once they are accounted for.
    steps_only = steps_runs(lambda d, b: 0.9 - 0.05 * math.log2(b))
    row = claims.beyond_steps_claim(steps_only, CFG, n_train, 200, rng())[0]
    assert row["verdict"] == "not held" and abs(row["value"]) < 0.2
    # Accuracy set by δ: at equal steps, the optimizer with the larger δ does better.
    by_delta = steps_runs(lambda d, b: 0.5 + 0.2 * d)
    row = claims.beyond_steps_claim(by_delta, CFG, n_train, 200, rng())[0]
    assert row["verdict"] == "held" and row["value"] > 0.5
    assert "Spearman with accuracy" in row["note"]


def failing_cases():
    """For every finding the ledger can produce, tables that fail it: the row, by test."""
    out = {}
    edge = by_claim(claims.bstar_claims(crit(("sgd", 256), ("shb", 16), ("nshb", 128)), 0.1, CFG))
    out["bstar_exists"] = edge["bstar_exists:sgd"]  # at the grid's end in every replicate
    flipped = by_claim(claims.bstar_claims(crit(("sgd", 128), ("shb", 16), ("nshb", 16)), 0.1, CFG))
    out["bstar_order"], out["bstar_same"] = flipped["bstar_order"], flipped["bstar_same"]
    convex = claims.concavity_claims(runs(lambda d: 0.5 + 0.05 * math.log(d) ** 2), CFG, 200, rng())
    for row in convex:
        out[row["test"]] = row
    out["delta_beyond_steps"] = claims.beyond_steps_claim(
        steps_runs(lambda d, b: 0.9 - 0.05 * math.log2(b)), CFG, 4096, 200, rng()
    )[0]
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
    sharp_wins = base.assign(delta=gen.permutation(acc), sharpness=-acc, sharpness_plain=-acc)
    for row in claims.sharpness_claims(
        sharp_wins, base.assign(train_loss=0.01, status="ok"), True, CFG, 200, rng()
    ):
        out[row["test"]] = row
    out["floor_share"] = claims.floor_claim(variance(1e-7), 0.1, GRID, CFG)[0]
    out["best_delta"] = claims.best_delta_claims(
        runs(lambda d: 0.9 - 0.05 * math.log(d / 5) ** 2), CFG, 200, rng()
    )[0]
    return out


def test_every_finding_has_tables_that_fail_it():
    """A finding is a statement data could refute: for each one the ledger produces, tables
    exist on which it is not held, and its row says in words what that result is."""
    full = rich_ledger()
    findings = set(full[full.kind == "finding"].test)
    failing = failing_cases()
    assert findings <= failing.keys(), findings - failing.keys()
    for test in findings:
        row = failing[test]
        assert row["kind"] == "finding" and row["verdict"] == "not held", (test, row)
        assert row["fails_if"], test


def rich_ledger():
    """A ledger with every kind of row: three optimizers, Figure 8 networks, noise measured."""
    c = crit(("sgd", 32), ("shb", 128), ("nshb", 32))
    r = steps_runs(lambda d, b: 0.9 - 0.05 * math.log(d / 0.2) ** 2, seeds=3, grid=GRID)
    r = r.assign(delta_low=r.delta, delta_high=r.delta)
    delta = r.drop_duplicates(["optimizer", "batch_size"])[
        ["optimizer", "lr", "beta", "batch_size", "delta", "delta_low", "delta_high", "established"]
    ].assign(grid="config")
    var = pd.concat(
        [
            variance(1.0),
            variance(1.0).assign(optimizer="sgd", beta=0.0, critical_batch_size=32.0),
            variance(1.0).assign(optimizer="nshb", critical_batch_size=32.0),
        ],
        ignore_index=True,
    )
    sharp = r[r.optimizer == "sgd"][
        ["optimizer", "lr", "beta", "batch_size", "seed", "test_accuracy", "delta"]
    ].assign(sharpness=lambda x: -x.test_accuracy, sharpness_plain=lambda x: x.batch_size * 1.0)
    noise = r[["optimizer", "lr", "beta", "batch_size", "seed"]].assign(
        epoch=1, c2=0.5, c2_stderr=0.05, k2=0.01, noise_scale=50.0, delta_empirical=0.1
    )
    acc = r[
        ["optimizer", "lr", "beta", "batch_size", "seed", "epochs", "status", "train_loss"]
        + ["test_accuracy"]
    ]
    return claims.ledger(
        c,
        var,
        delta,
        acc,
        sharp,
        noise=noise,
        lr=0.1,
        batch_sizes=GRID,
        adaptive=True,
        cfg=CFG,
        epsilon=0.5,
        n_train=4096,
        n_boot=50,
    ).pipe(keyed)


def test_identities_are_printed_with_their_derivation_and_never_held():
    ledger = rich_ledger()
    ids = ledger[ledger.kind == "identity"]
    assert (ids.verdict == "identity").all() and len(ids) >= 3
    # Equal b* (and equal C² bounds, as here): δ_NSHB/δ_SGD = √(b*_NSHB/b*_SGD)·… = its value.
    assert "identity_sgd_nshb" in ids.index and ids.statistic.str.contains("eqs. 12 and 14").any()
    at = ids.loc["identity_delta_at_bstar:sgd"]
    assert at.value == pytest.approx(
        theory.degree_of_smoothing("sgd", 0.1, 32, 1.0)
    )  # the fixture's bound, not ε√η: the row computes, it does not assert
    assert "identity_floor:shb" in ids.index
    # No identity is a finding: none is held, not held or undetermined.
    assert not set(ids.verdict) & {"held", "not held", "undetermined"}


def test_a_finding_without_its_failing_result_is_refused():
    with pytest.raises(ValueError, match="would have failed"):
        claims._row("x", "a claim", "s", 1, 0, 2, "> 0", "held", 3)


def test_claim_texts_are_typeset_not_plain_strings():
    """The ledger's words are TeX: b*_SHB and sqrt( … ) do not survive into the table."""
    ledger = rich_ledger()
    text = " ".join(ledger[["claim", "statistic", "threshold", "fails_if", "note"]].stack())
    for plain in ("b*_", "sqrt(", "δ_SGD", "log2("):
        assert plain not in text, plain
    assert "$b^*_{\\mathrm{SHB}} > b^*_{\\mathrm{SGD}}$" in ledger.claim.tolist()
