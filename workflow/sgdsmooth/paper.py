"""Measured numbers → TeX: macros, booktabs tables and figure environments, and the build.

Every number the report states about this run reaches it through files written here into
``results/<experiment>/paper/generated/``; the LaTeX sources under ``paper/`` only
``\\input`` them. ``build_pdf`` runs latexmk and fails on undefined references or
citations and on a missing figure.
"""

from __future__ import annotations

import csv
import math
import platform
import re
import shutil
import subprocess
import unicodedata
from importlib import metadata
from pathlib import Path

import pandas as pd

from . import theory
from .figures import LABELS, ORDER

# The article's reported values (METHOD §7), for the side-by-side table.
ARTICLE = {
    "critical_batch_size": {"sgd": 2**9, "shb": 2**10, "nshb": 2**9},
    "lr": 0.1, "beta": 0.9, "epsilon": 0.5,
    "best_delta": "0.2--1",
    "trend": {
        "sgd": "falls at large $b$", "shb": "flat, below 70\\,\\%", "nshb": "falls at large $b$ (as SGD)",
    },
}

# pdflatex reads ASCII; captions are written once, in Unicode, for the HTML report too.
_UNICODE = {
    "δ": r"$\delta$", "ε": r"$\varepsilon$", "η": r"$\eta$", "β": r"$\beta$", "ρ": r"$\rho$",
    "λ": r"$\lambda$", "ω": r"$\omega$", "Σ": r"$\Sigma$", "∇": r"$\nabla$", "²": r"$^2$",
    "·": r"$\cdot$", "×": r"$\times$", "–": "--", "—": "---", "≥": r"$\geq$", "≤": r"$\leq$",
    "→": r"$\to$", "‖": r"$\|$", "√": r"$\surd$", "≈": r"$\approx$", "f̂": r"$\hat f$",
    "*": r"$^*$", "₂": r"$_2$", "−": "$-$", "∞": r"$\infty$", "…": r"\ldots{}", "±": r"$\pm$",
    "ℓ": r"$\ell$", "%": r"\%", "_": r"\_", "&": r"\&", "#": r"\#",
}


def tex_text(text: str) -> str:
    """Plain Unicode text (a caption) → pdflatex-safe TeX; unknown non-ASCII is an error."""
    text = re.sub(r"``(.+?)``", r"\\texttt{\1}", text.strip())
    out = []
    i = 0
    while i < len(text):
        two = text[i : i + 2]
        if two in _UNICODE:
            out.append(_UNICODE[two])
            i += 2
            continue
        ch = text[i]
        greek = unicodedata.name(ch, "").split(" LETTER ")
        if ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif greek[0] in ("GREEK SMALL", "GREEK CAPITAL") and len(greek) == 2:
            name = greek[1].lower() if greek[0] == "GREEK SMALL" else greek[1].capitalize()
            out.append(f"$\\{name}$")
        elif ord(ch) > 127:
            raise ValueError(f"no TeX spelling for {ch!r} in caption text: add it to paper._UNICODE")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def fmt(x: float, digits: int = 3) -> str:
    """A number for the text: significant digits, thousands as plain digits, NaN as a dash."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "--"
    if float(x).is_integer() and abs(x) < 1e7:
        return f"{int(x)}"
    return f"{x:.{digits}g}"


def pow2(b: float) -> str:
    """A batch size as TeX, 2^k when it is a power of two; '--' when unknown."""
    if b is None or (isinstance(b, float) and math.isnan(b)) or b <= 0:
        return "--"
    k = math.log2(b)
    return f"\\ensuremath{{2^{{{int(k)}}}}}" if k.is_integer() else fmt(b)


def _macro(name: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"TeX macro names are letters only: {name!r}")
    return f"\\newcommand{{\\{name}}}{{{value}}}\n"


def _tabular(header: list[str], rows: list[list[str]], align: str) -> str:
    lines = [f"\\begin{{tabular}}{{{align}}}", "\\toprule", " & ".join(header) + r" \\", "\\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def best_delta_range(acc: pd.DataFrame, delta: pd.DataFrame, top: float = 0.01) -> tuple[float, float]:
    """δ range of the cells whose mean accuracy is within ``top`` of the best cell's."""
    d = delta[delta.grid == "config"].astype({"batch_size": "int64"})
    ok = acc[acc.status == "ok"].groupby(["optimizer", "lr", "beta", "batch_size"], as_index=False).test_accuracy.mean()
    m = ok.merge(d, on=["optimizer", "lr", "beta", "batch_size"])
    if m.empty or m.delta.isna().all():
        return (math.nan, math.nan)
    best = m[m.test_accuracy >= m.test_accuracy.max() - top]
    return float(best.delta.min()), float(best.delta.max())


def accuracy_trend(acc: pd.DataFrame, opt: str) -> str:
    """Words for how mean accuracy moves from the smallest to the largest batch size."""
    mine = acc[(acc.optimizer == opt) & (acc.status == "ok")].groupby("batch_size").test_accuracy.mean()
    if len(mine) < 2:
        return "--"
    first, peak, last = mine.iloc[0], mine.max(), mine.iloc[-1]
    return f"{100 * first:.1f}\\,\\% $\\to$ {100 * peak:.1f}\\,\\% (best, $b={int(mine.idxmax())}$) $\\to$ {100 * last:.1f}\\,\\%"


def benchmark_hours(paths) -> float:
    """Total wall-clock hours recorded by Snakemake's benchmark files."""
    total = 0.0
    for path in paths:
        with open(path) as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                total += float(row["s"])
    return total / 3600


def write_generated(out_dir: str | Path, config: dict, tables: dict[str, pd.DataFrame], figures: list[dict],
                    benchmarks: list[str], device: str) -> list[Path]:
    """Write numbers.tex, comparison.tex, cbs.tex, figures.tex and reproducibility.tex."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lr, eps = config["lr"], config["cbs"]["epsilon"]
    crit = tables["critical_batch_size"]
    crit = crit[(crit.lr - lr).abs() < 1e-12]
    var = tables["variance"]
    var = var[(var.lr - lr).abs() < 1e-12].set_index("optimizer")
    acc = tables["accuracy"]
    acc_main = acc[(acc.lr - lr).abs() < 1e-12]
    delta = tables["delta"]
    opts = [o for o in ORDER if o in config["optimizers"]]
    lo, hi = best_delta_range(acc_main, delta[(delta.lr - lr).abs() < 1e-12])

    # numbers.tex: one macro per measured or configured number the text mentions.
    names = {"sgd": "SGD", "shb": "SHB", "nshb": "NSHB"}
    m = [
        _macro("Experiment", config["experiment"].replace("_", r"\_")),
        _macro("Dataset", {"digits": "scikit-learn digits", "cifar100": "CIFAR-100"}[config["dataset"]]),
        _macro("Model", {"small_cnn": "a small CNN", "resnet18": "ResNet-18"}[config["model"]]),
        _macro("LearningRate", fmt(lr)), _macro("Epsilon", fmt(eps)),
        _macro("Momentum", fmt(max(config["optimizers"].values()))),
        _macro("BatchGrid", ", ".join(pow2(b) for b in sorted(config["batch_sizes"]))),
        _macro("CbsSeeds", str(len(config["cbs"]["seeds"]))), _macro("AccSeeds", str(len(config["accuracy"]["seeds"]))),
        _macro("Epochs", str(config["accuracy"]["epochs"])), _macro("MaxSteps", fmt(config["cbs"]["max_steps"])),
        _macro("MinEpochs", str(config["cbs"]["min_epochs"])),
        _macro("NumCbsRuns", str(len(tables["cbs_runs"]))), _macro("NumAccRuns", str(len(acc))),
        _macro("NumCensored", str(int((tables["cbs_runs"].status == "censored").sum()))),
        _macro("NumDiverged", str(int((acc.status == "diverged").sum() + (tables["cbs_runs"].status == "diverged").sum()))),
        _macro("BestDeltaLow", fmt(lo, 2)), _macro("BestDeltaHigh", fmt(hi, 2)),
        _macro("Device", device.replace("_", r"\_")), _macro("ComputeHours", fmt(benchmark_hours(benchmarks), 2)),
    ]
    for opt in ORDER:  # every optimizer's macros exist, "--" where the config has none
        rows = crit[crit.optimizer == opt]
        b = float(rows.critical_batch_size.iloc[0]) if len(rows) else math.nan
        m.append(_macro(f"Bstar{names[opt]}", pow2(b)))
        m.append(_macro(f"Bstar{names[opt]}Value", fmt(b)))  # plain digits, for the text
        m.append(_macro(f"Ctwo{names[opt]}", fmt(var.c2_bound.get(opt, math.nan))))
        m.append(_macro(f"Ktwo{names[opt]}", fmt(var.k2.get(opt, math.nan))))
    (out / "numbers.tex").write_text("".join(m))

    # comparison.tex: the article beside this run.
    rows = []
    for opt in opts:
        b = crit[crit.optimizer == opt].critical_batch_size
        art_b = ARTICLE["critical_batch_size"][opt]
        art_c2 = theory.c2_upper_bound(opt, art_b, ARTICLE["epsilon"], ARTICLE["lr"], ARTICLE["beta"] if opt != "sgd" else 0)
        rows.append([
            LABELS[opt], pow2(art_b), pow2(float(b.iloc[0]) if len(b) else math.nan),
            fmt(float(art_c2), 5), fmt(var.c2_bound.get(opt, math.nan), 4), "not reported", fmt(var.k2.get(opt, math.nan), 3),
            ARTICLE["trend"][opt], accuracy_trend(acc_main, opt),
        ])
    header = [r"", r"$b^*$ art.", r"$b^*$ here", r"$C^2$ art.", r"$C^2$ here", r"$K^2$ art.", r"$K^2$ here",
              r"accuracy vs $b$, article", r"accuracy vs $b$, here"]
    body = _tabular(header, rows, "l" + "r" * 6 + "p{2.6cm}p{4.6cm}")
    (out / "comparison.tex").write_text(
        "\\resizebox{\\textwidth}{!}{%\n" + body + "}\n"
    )

    # cbs.tex: SFO at every batch size, with censored and diverged runs counted.
    rows = []
    for r in crit.sort_values(["optimizer", "batch_size"]).itertuples():
        star = r"$\star$" if r.is_critical else ""
        rows.append([LABELS[r.optimizer], pow2(r.batch_size), fmt(r.sfo_mean), f"{r.n_reached}/{r.n_runs}",
                     str(r.n_censored), str(r.n_diverged), f"{r.bootstrap_share:.2f}", star])
    (out / "cbs.tex").write_text(_tabular(
        ["optimizer", "$b$", "mean SFO", "reached", "censored", "diverged", "bootstrap share", "$b^*$"], rows, "lrrrrrrc"))

    # figures.tex: one float per figure file produced, caption from workflow/report/.
    parts = []
    for f in figures:
        stem = Path(f["pdf"]).stem
        parts.append(
            "\\begin{figure}[tbp]\n\\centering\n"
            f"\\includegraphics[width=\\linewidth,height=0.38\\textheight,keepaspectratio]{{{Path(f['pdf']).resolve()}}}\n"
            f"\\caption{{{tex_text(Path(f['caption']).read_text())}}}\n\\label{{fig:{stem}}}\n\\end{{figure}}\n"
        )
    (out / "figures.tex").write_text("\n".join(parts))

    # sharpness.tex: the Figure 8 section, present only when the config measured sharpness.
    (out / "sharpness.tex").write_text(sharpness_section(tables.get("correlations"), tables.get("sharpness")))

    # noise.tex: the measured counterparts of the article's bounds, when measured.
    (out / "noise.tex").write_text(noise_section(tables.get("noise"), var, crit, delta, lr, opts))

    # reproducibility.tex: versions and the commands.
    pkgs = ["torch", "torchvision", "numpy", "pandas", "pyarrow", "seaborn", "snakemake"]
    rows = [[p, metadata.version(p)] for p in pkgs] + [["python", platform.python_version()]]
    (out / "reproducibility.tex").write_text(_tabular(["package", "version"], rows, "ll"))
    return sorted(out.glob("*.tex"))


def sharpness_section(corr: pd.DataFrame | None, sharp: pd.DataFrame | None) -> str:
    """A subsection with the rank correlations of accuracy with sharpness and with δ."""
    if corr is None or sharp is None or corr.empty:
        return ""
    names = {"spearman": "Spearman $\\rho$", "kendall": "Kendall $\\tau$",
             "quadratic_ln_delta_curvature": "curvature $a$ of accuracy in $(\\ln\\delta)^2$",
             "quadratic_ln_delta_vertex": "$\\delta$ at the fitted peak"}
    rows = []
    for r in corr.itertuples():
        ci = "--" if math.isnan(r.ci_low) else f"[{fmt(r.ci_low, 2)}, {fmt(r.ci_high, 2)}]"
        pred = "sharpness" if r.predictor == "sharpness" else "$\\delta$"
        rows.append([pred, names[r.method], fmt(r.coefficient, 3), ci, str(r.n)])
    rho = fmt(float(sharp.rho.iloc[0]))
    p = "\\infty" if sharp.p.iloc[0] == "inf" else sharp.p.iloc[0]
    return (
        "\\subsection*{Sharpness or smoothing?}\n"
        f"Figure~\\ref{{fig:fig8_sharpness}} measures the worst-case adaptive sharpness of {len(sharp)} SGD networks "
        f"($\\rho = {rho}$, $\\ell_{{{p}}}$ ball, Auto-PGD) at learning rates "
        + ", ".join(fmt(x) for x in sorted(sharp.lr.unique()))
        + ". Table~\\ref{tab:correlations} gives the rank correlation of test accuracy with sharpness and with "
        "$\\delta$ (95\\,\\% bootstrap intervals over networks) and a quadratic fit of accuracy in $\\ln\\delta$, "
        "which is concave when its curvature is negative.\n"
        "\\begin{table}[tbp]\n\\centering\n\\caption{Test accuracy against sharpness and against $\\delta$.}\n"
        "\\label{tab:correlations}\n"
        + _tabular(["predictor", "statistic", "value", "95\\,\\% interval", "$n$"], rows, "llrrr")
        + "\\end{table}\n"
    )


def noise_section(noise: pd.DataFrame | None, var: pd.DataFrame, crit: pd.DataFrame, delta: pd.DataFrame,
                  lr: float, opts: list[str]) -> str:
    """A section setting measured C², K², δ and B_simple beside the inferred ones."""
    if noise is None or noise.empty:
        return ""
    n = noise[(noise.lr - lr).abs() < 1e-12]
    n = n[n.epoch == n.epoch.max()]
    d = delta[(delta.grid == "config") & ((delta.lr - lr).abs() < 1e-12)].astype({"batch_size": "int64"})
    m = n.merge(d[["optimizer", "batch_size", "delta"]], on=["optimizer", "batch_size"], how="left")
    rows = []
    for opt in opts:
        mine = m[m.optimizer == opt]
        if mine.empty:
            continue
        b = crit[crit.optimizer == opt].critical_batch_size
        ratio = (mine.delta_empirical / mine.delta).median()
        rows.append([
            LABELS[opt], fmt(var.c2_bound.get(opt, math.nan), 3),
            f"{fmt(mine.c2.median(), 3)} [{fmt(mine.c2.min(), 2)}, {fmt(mine.c2.max(), 2)}]",
            fmt(mine.c2_per_example.median(), 3), fmt(mine.k2.median(), 3),
            fmt(ratio, 2), fmt(mine.noise_scale.median(), 3), pow2(float(b.iloc[0]) if len(b) else math.nan),
        ])
    overhead = n.seconds.sum()
    header = ["", "$C^2$ bound", "$C^2$ measured (median [range] over $b$)", "$C^2$ per-example", "$K^2$",
              r"$\delta_{\mathrm{emp}}/\delta$", r"$B_{\mathrm{simple}}$", "$b^*$"]
    return (
        "\\section{Beyond the article: measured noise}\n"
        "The article infers $C^2$ from an inequality at $b^*$ and assumes the search-direction noise is as large "
        "as its bound. Here both are measured at the end of every fixed-epoch run "
        "(Figure~\\ref{fig:fig9_measured_noise}, Table~\\ref{tab:noise}): $C^2$ by the two-batch-size estimator of "
        "McCandlish et al.~\\cite{mccandlish2018} (unbiased, BatchNorm in train mode) and from exact per-example "
        "gradients (BatchNorm in eval mode); $K^2=\\|\\nabla f\\|^2$ on the full training set; the empirical degree "
        "of smoothing $\\delta_{\\mathrm{emp}} = \\eta\\sqrt{\\mathbb{E}\\|d_t - \\nabla f(x_t)\\|^2}$ from each "
        "optimizer's own direction $d_t$; and the gradient noise scale $B_{\\mathrm{simple}} = \\mathrm{tr}\\,\\Sigma/\\|G\\|^2$, "
        f"which McCandlish et al. relate to the critical batch size. The measurements took {fmt(overhead, 3)}\\,s in all.\n"
        "\\begin{table}[tbp]\n\\centering\n\\caption{Inferred and measured noise, medians over the batch sizes of "
        "the main study (last measurement of each run).}\n\\label{tab:noise}\n\\small\n"
        "\\resizebox{\\textwidth}{!}{%\n" + _tabular(header, rows, "lrlrrrrr") + "}\n\\end{table}\n"
    )


_FAILURES = (
    re.compile(r"LaTeX Warning: Reference .* undefined"),
    re.compile(r"LaTeX Warning: Citation .* undefined"),
    re.compile(r"LaTeX Warning: There were undefined references"),
    re.compile(r"! LaTeX Error: File .* not found"),
)


class PaperBuildError(RuntimeError):
    """latexmk failed, or the log shows an undefined reference, citation or missing file."""


def build_pdf(source: str | Path, generated: str | Path, pdf: str | Path, log: str | Path | None = None) -> None:
    """Compile ``source``/paper.tex with latexmk into ``pdf``; fail loudly on broken refs."""
    source, generated, pdf = Path(source).resolve(), Path(generated).resolve(), Path(pdf).resolve()
    build = pdf.parent / "build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    for f in source.iterdir():
        if f.suffix in (".tex", ".bib", ".sty"):
            shutil.copy(f, build / f.name)
    (build / "generated").symlink_to(generated)
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", "paper.tex"]
    proc = subprocess.run(cmd, cwd=build, capture_output=True, text=True)
    texlog = (build / "paper.log").read_text(errors="replace") if (build / "paper.log").exists() else ""
    if log:
        Path(log).write_text(proc.stdout + proc.stderr + texlog)
    if proc.returncode != 0:  # TeX's own error lines (file:line: message) say what broke
        errors = [line for line in texlog.splitlines() if re.match(r"^(!|\./.*:\d+:)", line)]
        tail = "\n".join(errors[:10] or (proc.stdout + proc.stderr).splitlines()[-30:])
        raise PaperBuildError(f"latexmk failed for {source / 'paper.tex'}:\n{tail}")
    problems = [line for line in texlog.splitlines() if any(p.search(line) for p in _FAILURES)]
    if problems:
        raise PaperBuildError(f"{source / 'paper.tex'} built with problems:\n" + "\n".join(problems))
    shutil.copy(build / "paper.pdf", pdf)

