"""The pieces of the paper build that need no pipeline run."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgdsmooth import paper

ROOT = Path(__file__).resolve().parents[1]


def test_every_caption_converts_to_tex():
    for caption in (ROOT / "workflow" / "report").glob("*.rst"):
        tex = paper.tex_text(caption.read_text())
        assert tex.isascii(), caption.name


def test_tex_text_by_hand():
    assert (
        paper.tex_text("δ ≥ 0.5 · C² for ``b_max``")
        == r"$\delta$ $\geq$ 0.5 $\cdot$ C$^2$ for \texttt{b\_max}"
    )
    assert paper.tex_text("π and Σ") == r"$\pi$ and $\Sigma$"
    with pytest.raises(ValueError, match="no TeX spelling"):
        paper.tex_text("☃")


def test_numbers_for_the_text():
    assert (
        paper.pow2(512) == r"\ensuremath{2^{9}}"
        and paper.pow2(48) == "48"
        and paper.pow2(-1) == "--"
    )
    assert (
        paper.fmt(float("nan")) == "--"
        and paper.fmt(1280.0) == "1280"
        and paper.fmt(25.3187, 5) == "25.319"
    )


def test_build_fails_on_an_undefined_reference(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "paper.tex").write_text(
        "\\documentclass{article}\\begin{document}See \\ref{nowhere}.\\end{document}\n"
    )
    (tmp_path / "gen").mkdir()
    with pytest.raises(paper.PaperBuildError, match="undefined"):
        paper.build_pdf(src, tmp_path / "gen", tmp_path / "out" / "paper.pdf")


def test_build_fails_on_a_missing_figure(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "paper.tex").write_text(
        "\\documentclass{article}\\usepackage{graphicx}\\begin{document}\\includegraphics{missing.pdf}\\end{document}\n"
    )
    (tmp_path / "gen").mkdir()
    with pytest.raises(paper.PaperBuildError):
        paper.build_pdf(src, tmp_path / "gen", tmp_path / "out" / "paper.pdf")


def test_every_optimizer_macro_is_defined_even_when_not_configured(tmp_path):
    import pandas as pd

    from sgdsmooth.tables import SCHEMAS

    empty = {
        n: pd.DataFrame(
            {
                c: pd.Series(dtype=t.to_pandas_dtype())
                for c, t in zip(SCHEMAS[n].names, SCHEMAS[n].types)
            }
        )
        for n in ("cbs_runs", "critical_batch_size", "variance", "delta", "accuracy")
    }
    cfg = {
        "experiment": "x",
        "dataset": "digits",
        "model": "small_cnn",
        "lr": 0.1,
        "optimizers": {"sgd": 0.0},
        "batch_sizes": [8],
        "cbs": {"epsilon": 0.5, "seeds": [0], "max_steps": 10, "min_epochs": 0},
        "accuracy": {"epochs": 1, "seeds": [0]},
    }
    paper.write_generated(tmp_path, cfg, empty, [], [], "cpu")
    numbers = (tmp_path / "numbers.tex").read_text()
    for name in ("SGD", "SHB", "NSHB"):
        assert f"\\newcommand{{\\Bstar{name}Value}}{{--}}" in numbers


def test_the_stopping_rule_sentence_counts_the_runs_the_loss_gate_stopped():
    from sgdsmooth.paper import learned_sentence

    runs = pd.DataFrame(
        {
            "status": ["reached", "reached", "censored"],
            "train_loss": [0.3, 0.4, 1.0],
            "gate_bound": [True, False, False],
        }
    )
    text = learned_sentence(runs, 0.5)
    assert "at most 0.5" in text and "The 2 runs" in text and "at most 0.4" in text
    assert "1 of them stopped on the first step after the rule was armed" in text
    assert "None of them" in learned_sentence(runs.assign(gate_bound=False), 0.5)
    assert learned_sentence(runs, None) == "The rule may fire from the first step."


def test_the_provenance_line_names_commit_config_device_and_archive():
    built = {"commit": "0123456789abcdef" * 2, "dirty": True}
    measured = {"commit": "fedcba9876543210" * 2, "dirty": False}
    now = datetime(2026, 11, 30, 7, 5, tzinfo=UTC)
    prov = paper.provenance(built, {"experiment": "x", "lr": 0.1}, measured, now=now)
    assert prov["config_hash"] == paper.config_hash({"experiment": "x", "lr": 0.1})
    assert paper.provenance_tex(prov, "NVIDIA H200") == (
        "Built 2026-11-30 07:05 UTC from commit \\texttt{0123456789ab} with uncommitted "
        f"changes; config hash \\texttt{{{prov['config_hash']}}}; trained on NVIDIA H200; "
        "measurements archived from commit \\texttt{fedcba987654}."
    )
    front = paper.report_front(prov, "x", "cpu")
    assert "from commit 0123456789ab with uncommitted changes" in front
    assert f"``{prov['config_hash']}``" in front and "archived from commit fedcba987654" in front
    assert paper.provenance_tex(None, "cpu") == "provenance not recorded"


def test_a_config_changed_from_the_archives_is_listed_on_the_title_page():
    state = {"commit": "0123456789abcdef" * 2, "dirty": False}
    changes = ["accuracy.epochs: 8 → 9", "k2_statistic: mean → sup"]
    prov = paper.provenance(state, {"experiment": "x"}, state, changes=changes)
    assert paper.provenance_tex(prov, "cpu").endswith(
        "; config differs from the archive's: accuracy.epochs: 8 $\\to$ 9, "
        "k2\\_statistic: mean $\\to$ sup."
    )
    assert "Config differs from the archive's: accuracy.epochs: 8 → 9" in paper.report_front(
        prov, "x", "cpu"
    )
    assert "differs" not in paper.provenance_tex(paper.provenance(state, {}, state), "cpu")


def no_bstar_tables() -> dict:
    """Tables of a study where every SGD run collapsed (censored at chance loss, as at η = 50)
    and SHB trained: SGD has no b*."""
    import numpy as np

    from sgdsmooth import cbs, collect

    settings = collect.collapse_settings({"dataset": "digits"})
    rows = []
    for opt, beta in (("sgd", 0.0), ("shb", 0.9)):
        for b, steps in ((8, 8000), (16, 2000), (32, 1200), (64, 1000)):
            for s in range(2):
                dead = opt == "sgd"  # η too large: SGD sits at chance loss, censored
                rows.append(
                    {
                        "optimizer": opt,
                        "lr": 0.1,
                        "beta": beta,
                        "epsilon": 0.5,
                        "batch_size": b,
                        "seed": s,
                        "steps": steps,
                        "sfo": steps * b,
                        "reached": not dead,
                        "status": "censored" if dead else "reached",
                        "train_loss": 2.31 if dead else 0.05,
                        "armed_epoch": np.nan if dead else 2.0,
                        "gate_bound": False,
                    }
                )
    runs = collect.mark_collapsed(pd.DataFrame(rows), settings)
    crit = cbs.critical_batch_sizes(runs, n_boot=20)
    k2 = pd.DataFrame({"optimizer": ["sgd", "shb"], "lr": 0.1, "beta": [0.0, 0.9]}).assign(
        k2=[np.nan, 1.0], k2_sup=[np.nan, 2.0], k2_mean=[np.nan, 1.0], k2_final=[np.nan, 0.5]
    )
    var = cbs.variance_bounds(crit, k2).assign(k2_sup_source=["", "b = 8, seed 0, epoch 1"])
    delta = cbs.delta_table(var, [8, 16, 32, 64], fine_points=5)
    acc = pd.DataFrame(
        [
            {
                "optimizer": o,
                "lr": 0.1,
                "beta": beta,
                "batch_size": b,
                "seed": 0,
                "epochs": 2,
                "status": "ok",
                "train_loss": 2.4 if o == "sgd" else 0.05,
                "train_accuracy": 0.1 if o == "sgd" else 0.99,
                "test_loss": 2.4 if o == "sgd" else 0.1,
                "test_accuracy": 0.1 if o == "sgd" else 0.95,
            }
            for o, beta in (("sgd", 0.0), ("shb", 0.9))
            for b in (8, 16, 32, 64)
        ]
    )
    acc = collect.mark_collapsed(acc, settings)
    return {
        "cbs_runs": runs,
        "critical_batch_size": crit,
        "variance": var,
        "delta": delta,
        "accuracy": acc,
    }


def test_an_optimizer_without_bstar_is_said_in_words_and_collapsed_runs_are_counted(tmp_path):
    cfg = {
        "experiment": "x",
        "dataset": "digits",
        "model": "small_cnn",
        "lr": 0.1,
        "optimizers": {"sgd": 0.0, "shb": 0.9},
        "batch_sizes": [8, 16, 32, 64],
        "cbs": {"epsilon": 0.5, "seeds": [0, 1], "max_steps": 10, "min_epochs": 0},
        "accuracy": {"epochs": 2, "seeds": [0]},
    }
    paper.write_generated(tmp_path, cfg, no_bstar_tables(), [], [], "cpu")
    bstar = (tmp_path / "bstar.tex").read_text()
    assert "no $b^*_{\\mathrm{SGD}}$, as there is no batch size where every run reached" in bstar
    assert "(of 8 runs: 0 reached, 8 collapsed)" in bstar
    assert "so SGD has no $C^2$ bound and no $\\delta$" in bstar
    assert "$b^*_{\\mathrm{SHB}} = 16$ (established" in bstar  # the other keeps its number
    for sentinel in ("-1", "−1", "--", "−−", "nan"):
        assert sentinel not in bstar, sentinel
    numbers = (tmp_path / "numbers.tex").read_text()
    assert "\\newcommand{\\NumCollapsed}{12}" in numbers  # 8 CBS runs and 4 fixed-epoch runs
    assert "\\newcommand{\\NumDiverged}{0}" in numbers
    assert "\\newcommand{\\BstarSGD}{none (no batch size" in numbers and "-1" not in numbers
    assert "at least 2.19" in numbers and "ln 10 = 2.30" in numbers
    sgd_row = next(
        line for line in (tmp_path / "comparison.tex").read_text().splitlines() if "SGD" in line
    )
    cells = [c.strip() for c in sgd_row.split("&")]
    assert cells[2] == "none" and cells[4] == "none"  # b* here, C² here
    cbs_rows = [r for r in (tmp_path / "cbs.tex").read_text().splitlines() if r.startswith("SGD")]
    assert len(cbs_rows) == 4 and all(r.split("&")[7].strip() == "2" for r in cbs_rows)
    assert not any("star" in r for r in cbs_rows)  # no b* marked


def test_figures_draw_an_optimizer_without_bstar_and_collapsed_runs(tmp_path):
    from sgdsmooth import tables
    from sgdsmooth.figures import fig4_sfo, fig5_delta, fig6_accuracy, fig7_delta_accuracy

    t = {}
    for name, frame in no_bstar_tables().items():
        if name == "variance":  # not drawn
            continue
        t[name] = str(tmp_path / f"{name}.parquet")
        tables.write_table(frame, t[name], name)

    def out(name):
        return {
            "pdf": str(tmp_path / f"{name}.pdf"),
            "png": str(tmp_path / f"{name}.png"),
            "lr": 0.1,
        }

    def drawn(name):  # a figure with something on it, not a blank canvas
        from PIL import Image

        pixels = np.asarray(Image.open(tmp_path / f"{name}.png").convert("L"))
        return (tmp_path / f"{name}.pdf").stat().st_size > 1000 and pixels.std() > 5

    fig4_sfo.draw(t["cbs_runs"], t["critical_batch_size"], **out("fig4"))
    fig5_delta.draw(t["delta"], **out("fig5"))
    fig6_accuracy.draw(t["accuracy"], **out("fig6"))
    fig7_delta_accuracy.draw(t["accuracy"], t["delta"], **out("fig7"))
    assert all(drawn(name) for name in ("fig4", "fig5", "fig6", "fig7"))
    # No optimizer with b*: no δ anywhere, and the δ figures still draw (no log axis of NaN).
    nothing = no_bstar_tables()["delta"].assign(delta=float("nan"))
    nothing = nothing.assign(delta_low=nothing.delta, delta_high=nothing.delta)
    tables.write_table(nothing, t["delta"], "delta")
    fig5_delta.draw(t["delta"], **out("fig5_none"))
    fig7_delta_accuracy.draw(t["accuracy"], t["delta"], **out("fig7_none"))
    assert drawn("fig5_none") and drawn("fig7_none")


def test_no_sentence_states_a_c2_bound_that_the_consistency_rows_contradict():
    var = pd.DataFrame(
        {"c2_bound": [8.0], "c2_bound_low": [8.0], "c2_bound_high": [11.2]},
        index=pd.Index(["nshb"], name="optimizer"),
    )

    def ledger(verdict, value):
        return pd.DataFrame(
            [
                {
                    "test": "c2_bound",
                    "kind": "consistency",
                    "optimizer": "nshb",
                    "verdict": verdict,
                    "value": value,
                }
            ]
        )

    contradicted = paper.c2_words("nshb", var, ledger("inconsistent", 2.8))
    assert "would give $C^2_{\\mathrm{NSHB}} < 8$" in contradicted
    assert "does not hold here" in contradicted and "2.8 times the bound" in contradicted
    assert not contradicted.startswith("so ")
    upheld = paper.c2_words("nshb", var, ledger("consistent", 0.4))
    assert upheld.startswith("so $C^2_{\\mathrm{NSHB}} < 8$") and "8 to 11.2" in upheld
    untested = paper.c2_words("nshb", var, None)
    assert "neither confirms nor contradicts" in untested and not untested.startswith("so ")


def test_the_abstract_counts_findings_identities_and_checks_apart():
    claims = pd.DataFrame(
        {
            "test": ["a", "b", "c", "d", "delta_ratio", "bsimple"],
            "kind": ["finding", "finding", "identity", "consistency", "consistency", "consistency"],
            "optimizer": ["", "", "", "sgd", "shb", "sgd"],
            "claim": ["x"] * 6,
            "verdict": [
                "held",
                "undetermined",
                "identity",
                "consistent",
                "inconsistent",
                "undetermined",
            ],
            "value": [1.0, 1.0, 1.0, 1.0, 0.05, 1.0],
        }
    )
    counts = paper.ledger_counts(claims)
    assert counts["NumFindings"] == 2 and counts["NumHeld"] == 1  # the identity is not held
    assert counts["NumIdentities"] == 1 and counts["NumConsistency"] == 3
    assert (counts["NumConsistent"], counts["NumInconsistent"], counts["NumConsistencyOpen"]) == (
        1,
        1,
        1,
    )
    words = paper.inconsistent_words(claims)
    assert (
        words
        == "the formula's $\\delta_{\\mathrm{SHB}}$ against the measured smoothing (ratio 0.05)"
    )


def test_ledger_text_keeps_its_math_and_escapes_its_prose():
    assert paper.tex_mixed("the best $\\delta_{\\mathrm{SHB}}$ lies in 50 % of_it") == (
        "the best $\\delta_{\\mathrm{SHB}}$ lies in 50 \\% of\\_it"
    )


def test_the_correlations_table_says_its_intervals_are_over_cells():
    """The caption and the text name the bootstrap over cells and how many there are; each
    row gives its networks, cells and bootstrap replicates with a value (none: a dash)."""
    from sgdsmooth import correlate

    gen = np.random.default_rng(0)
    cells = [(lr, b) for lr in (0.1, 1.0) for b in (64, 128, 256)]
    sharp = pd.DataFrame(
        [
            dict(optimizer="sgd", lr=lr, beta=0.0, batch_size=b, seed=s, rho=2e-4, p="inf")
            for lr, b in cells
            for s in range(3)
        ]
    )
    sharp = sharp.assign(
        delta=np.sqrt(sharp.lr / sharp.batch_size),
        sharpness=gen.uniform(1, 2, len(sharp)),
        sharpness_plain=gen.uniform(1, 2, len(sharp)),
        test_accuracy=gen.uniform(0.5, 0.6, len(sharp)),
    )
    corr = correlate.correlations(sharp, n_boot=30)
    text = paper.sharpness_section(corr, sharp)
    assert "intervals over its 6 cells" in text
    caption = text.split("\\caption{", 1)[1].split("\\label", 1)[0]
    assert "bootstrap over the cells" in caption and "6 in all" in caption
    assert "not over networks" in caption
    assert "& $n$ & cells & replicates" in text
    assert "& 18 & 6 & 30/30 \\\\" in text  # Spearman of adaptive sharpness: 18 networks, 6 cells
    assert "& 18 & 6 & -- \\\\" in text  # the fitted peak has no interval
