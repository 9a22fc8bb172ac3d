"""The pieces of the paper build that need no pipeline run."""

from datetime import UTC, datetime
from pathlib import Path

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
