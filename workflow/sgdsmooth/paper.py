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
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

from . import archive, collect, theory
from .figures import LABELS, ORDER
from .paths import safe_rmtree
from .tables import config_hash

# The article's reported values (docs/method.md §7), for the side-by-side table. K: the authors'
# code hard-codes K (not K²) per network and optimizer; ResNet-18 on CIFAR-100 here
# (WRN-28-10: K_SHB = 1.66, K_NSHB = 4.262).
ARTICLE = {
    "critical_batch_size": {"sgd": 2**9, "shb": 2**10, "nshb": 2**9},
    "lr": 0.1,
    "beta": 0.9,
    "epsilon": 0.5,
    "k": {"sgd": None, "shb": 1.77, "nshb": 4.5},
    "trend": {
        "sgd": "falls at large $b$",
        "shb": "flat, below 70\\,\\%",
        "nshb": "falls at large $b$ (as SGD)",
    },
}

# pdflatex reads ASCII; captions are written once, in Unicode, for the HTML report too.
_UNICODE = {
    "δ": r"$\delta$",
    "ε": r"$\varepsilon$",
    "η": r"$\eta$",
    "β": r"$\beta$",
    "ρ": r"$\rho$",
    "λ": r"$\lambda$",
    "ω": r"$\omega$",
    "Σ": r"$\Sigma$",
    "∇": r"$\nabla$",
    "²": r"$^2$",
    "·": r"$\cdot$",
    "×": r"$\times$",
    "–": "--",
    "—": "---",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "→": r"$\to$",
    "β̂": r"$\hat\beta$",
    "‖": r"$\|$",
    "√": r"$\surd$",
    "≈": r"$\approx$",
    "f̂": r"$\hat f$",
    "*": r"$^*$",
    "₂": r"$_2$",
    "−": "$-$",
    "∞": r"$\infty$",
    "…": r"\ldots{}",
    "±": r"$\pm$",
    "ℓ": r"$\ell$",
    "%": r"\%",
    "_": r"\_",
    "&": r"\&",
    "#": r"\#",
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
            raise ValueError(
                f"no TeX spelling for {ch!r} in caption text: add it to paper._UNICODE"
            )
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def tex_mixed(text: str) -> str:
    """Ledger text → TeX: math between $…$ is kept as written, the prose between is
    converted by :func:`tex_text` (so a stray % or _ in prose cannot break the build)."""

    def prose(p: str) -> str:  # tex_text strips: the spaces around math are kept
        core = p.strip()
        return p[: len(p) - len(p.lstrip())] + tex_text(core) + p[len(p.rstrip()) :] if core else p

    parts = re.split(r"(\$[^$]*\$)", text)
    return "".join(p if len(p) > 1 and p[0] == p[-1] == "$" else prose(p) for p in parts)


def fmt(x: float, digits: int = 3) -> str:
    """A number for the text: significant digits, thousands as plain digits, NaN as a dash."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "--"
    if (float(x).is_integer() or abs(x) >= 10**digits) and abs(x) < 1e7:
        return f"{round(x)}"  # counts and large means (an SFO) in plain digits
    return f"{x:.{digits}g}"


def pow2(b: float) -> str:
    """A batch size as TeX, 2^k when it is a power of two; '--' when unknown."""
    if b is None or (isinstance(b, float) and math.isnan(b)) or b <= 0:
        return "--"
    k = math.log2(b)
    return f"\\ensuremath{{2^{{{int(k)}}}}}" if k.is_integer() else fmt(b)


def learned_sentence(runs: pd.DataFrame, limit: float | None) -> str:
    """What the stopping rule's loss gate (``cbs.learned_loss``) was, what the runs that
    reached ε had learned, and how many of them the gate rather than ε stopped."""
    if limit is None:
        return "The rule may fire from the first step."
    reached = runs[runs.status == "reached"]
    text = (
        f"The rule is armed only after a finished epoch whose mean training loss is at most "
        f"{fmt(limit)}, so that no run stops at its initialisation."
    )
    if "train_loss" in reached and reached.train_loss.notna().any():
        which = "The one run" if len(reached) == 1 else f"The {len(reached)} runs"
        text += (
            f" {which} that reached $\\varepsilon$ without collapsing had a mean training loss "
            f"of at most "
            f"{fmt(reached.train_loss.max())} in their last complete epoch."
        )
    if "gate_bound" in reached:
        bound = int(reached.gate_bound.sum())
        text += (
            f" {bound} of them stopped on the first step after the rule was armed: "
            f"for those the loss threshold, not $\\varepsilon$, set $T$."
            if bound
            else (
                " None of them stopped on the first step after the rule was armed: "
                "$\\varepsilon$ set every $T$."
            )
        )
    return text


def provenance(
    state: dict, config: dict, measured: dict | None = None, now=None, changes=()
) -> dict:
    """Where a report comes from: the checkout that built it (``state``, from
    ``archive.build_state``), the config hash, the date, and under ``source: archive`` the
    archive's stamp (the checkout that trained and measured) and how this config differs
    from the archive's (``changes``, archive.check_rebuild: allowed by allow_config_change)."""
    return {
        "built": archive.commit_words(state),
        "config_hash": config_hash(config),
        "date": (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        "measured": archive.commit_words(measured) if measured else None,
        "config_changes": list(changes),
    }


def provenance_tex(prov: dict | None, device: str) -> str:
    """The title page's provenance line."""
    if prov is None:
        return "provenance not recorded"

    def commit(words: str) -> str:
        return re.sub(r"^commit ([0-9a-f]{12})", r"commit \\texttt{\1}", words)

    text = (
        f"Built {prov['date']} from {commit(prov['built'])}; "
        f"config hash \\texttt{{{prov['config_hash']}}}; trained on {tex_text(device)}"
    )
    if prov["measured"]:
        text += f"; measurements archived from {commit(prov['measured'])}"
    if prov.get("config_changes"):  # a reader must see that settings and numbers disagree
        text += "; config differs from the archive's: " + tex_text(
            ", ".join(prov["config_changes"])
        )
    return text + "."


def write_provenance(tex: str | Path, front: str | Path, prov: dict, experiment: str, device: str):
    """Where the report comes from, written where the PDF is built (editing paper.tex
    rebuilds only the PDF): ``tex`` defines the title page's \\Provenance, ``front`` is the
    HTML report's front text."""
    Path(tex).write_text(_macro("Provenance", provenance_tex(prov, device)), encoding="utf-8")
    Path(front).write_text(report_front(prov, experiment, device), encoding="utf-8")


def report_front(prov: dict, experiment: str, device: str) -> str:
    """The HTML report's front text (reStructuredText): what it is and where it came from."""
    lines = [
        f"Reproduction of Sato & Iiduka's degree-of-smoothing study, experiment ``{experiment}``."
        " The method is in ``docs/method.md``; each figure's caption names the rule and the"
        " code that drew it, and the commit it was drawn at.",
        "",
        f"- Built: {prov['date']}, from {prov['built']}",
        f"- Config hash: ``{prov['config_hash']}``",
        f"- Trained on: {device}",
    ]
    if prov["measured"]:
        lines.append(f"- Measurements: archived from {prov['measured']}")
    if prov.get("config_changes"):
        lines.append("- Config differs from the archive's: " + ", ".join(prov["config_changes"]))
    return "\n".join(lines) + "\n"


def _macro(name: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"TeX macro names are letters only: {name!r}")
    return f"\\newcommand{{\\{name}}}{{{value}}}\n"


def _tabular(header: list[str], rows: list[list[str]], align: str) -> str:
    lines = [
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(header) + r" \\",
        "\\midrule",
    ]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def accuracy_trend(acc: pd.DataFrame, opt: str) -> str:
    """Words for how mean accuracy moves from the smallest to the largest batch size."""
    mine = collect.finished(acc[acc.optimizer == opt]).groupby("batch_size").test_accuracy.mean()
    if len(mine) < 2:
        return "--"
    first, peak, last = mine.iloc[0], mine.max(), mine.iloc[-1]
    return (
        f"{100 * first:.1f}\\,\\% $\\to$ "
        f"{100 * peak:.1f}\\,\\% (best, $b={int(mine.idxmax())}$) $\\to$ "
        f"{100 * last:.1f}\\,\\%"
    )


def benchmark_hours(paths) -> float:
    """Total wall-clock hours recorded by Snakemake's benchmark files."""
    total = 0.0
    for path in paths:
        with open(path) as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                total += float(row["s"])
    return total / 3600


def bstar_words(row: pd.Series | None) -> str:
    """b* of one cell for the text: its value when established, 'undetermined' and why when
    not, 'none' and why when the cell has no b* at all (a missing ``critical_batch_size``)."""
    if row is None:
        return "--"
    if pd.isna(row.critical_batch_size):
        return f"none ({tex_text(row.reason)})"
    if not row.established:
        return f"undetermined (argmin {pow2(row.critical_batch_size)}; {tex_text(row.reason)})"
    return pow2(row.critical_batch_size)


LEDGER_COUNTS = {
    "NumFindings": ("finding", None),
    "NumHeld": ("finding", "held"),
    "NumNotHeld": ("finding", "not held"),
    "NumUndetermined": ("finding", "undetermined"),
    "NumIdentities": ("identity", None),
    "NumConsistency": ("consistency", None),
    "NumConsistent": ("consistency", "consistent"),
    "NumInconsistent": ("consistency", "inconsistent"),
    "NumConsistencyOpen": ("consistency", "undetermined"),
}


def ledger_counts(claims: pd.DataFrame | None) -> dict[str, int]:
    """The abstract's counts by kind: findings (held, not held, undetermined), identities
    (never counted as held), consistency rows (consistent, inconsistent, open)."""
    out = {}
    for name, (kind, verdict) in LEDGER_COUNTS.items():
        if claims is None or claims.empty:
            out[name] = 0
            continue
        mine = claims[claims.kind == kind]
        out[name] = int(len(mine) if verdict is None else (mine.verdict == verdict).sum())
    return out


CHECK_WORDS = {
    "c2_bound": "the $C^2_{{{o}}}$ bound from $b^*$ against the $C^2$ measured at $b^*$ "
    "(largest {v} times the bound)",
    "bstar_implied": "$b^*_{{{o}}}$ against the $b^*$ the measured $C^2$ implies "
    "($\\log_2$ ratio {v})",
    "delta_ratio": "the formula's $\\delta_{{{o}}}$ against the measured smoothing (ratio {v})",
    "bsimple": "$B_{{\\mathrm{{simple}}}}$ against $b^*_{{{o}}}$ ($\\log_2$ ratio {v})",
}


def inconsistent_words(claims: pd.DataFrame | None) -> str:
    """The inconsistent checks of the ledger in words, for the abstract."""
    if claims is None or claims.empty:
        return "none"
    bad = claims[(claims.kind == "consistency") & (claims.verdict == "inconsistent")]
    names = LABELS
    words = [
        CHECK_WORDS[r.test].format(o=f"\\mathrm{{{names[r.optimizer]}}}", v=fmt(r.value, 2))
        if r.test in CHECK_WORDS
        else tex_mixed(r.claim)
        for r in bad.itertuples()
    ]
    return "; ".join(words) or "none"


def interp_words(c: pd.Series) -> str:
    """'; interpolated 36.9 [32, 44.8]' for a b* row, '' without an interpolated b*."""
    if pd.isna(c.get("bstar_interp", math.nan)):
        return ""
    return (
        f"; interpolated {fmt(c.bstar_interp)} "
        f"[{fmt(c.bstar_interp_ci_low)}, {fmt(c.bstar_interp_ci_high)}]"
    )


def c2_words(opt: str, var: pd.DataFrame, claims: pd.DataFrame | None) -> str:
    """What Theorem 4.4 makes of b*, as far as the ledger's consistency row lets it be said:
    the bound as holding where the C² measured at b* agrees, as contradicted where it does
    not, as untested otherwise. Never a bound the consistency rows contradict."""
    name = LABELS[opt]
    bound = fmt(var.c2_bound.get(opt, math.nan))
    lo = var.c2_bound_low.get(opt, math.nan) if "c2_bound_low" in var else math.nan
    hi = var.c2_bound_high.get(opt, math.nan) if "c2_bound_high" in var else math.nan
    same = pd.isna(lo) or fmt(lo) == fmt(hi)
    span = "" if same else f" ({fmt(lo)} to {fmt(hi)} over $b^*$'s interval)"
    row = None
    if claims is not None and not claims.empty and "test" in claims:
        rows = claims[(claims.test == "c2_bound") & (claims.optimizer == opt)]
        row = rows.iloc[0] if len(rows) else None
    c2 = f"$C^2_{{\\mathrm{{{name}}}}}"
    if row is not None and row.verdict == "inconsistent":
        return (
            f"from which Theorem~4.4 would give {c2} < {bound}${span}; but the $C^2$ "
            f"measured at $b^*$ exceeds it ({fmt(row.value, 2)} times the bound), so the bound "
            f"does not hold here, and $\\delta_{{\\mathrm{{{name}}}}}$, computed from it, "
            "rests on a contradicted premise"
        )
    if row is not None and row.verdict == "consistent":
        return (
            f"so {c2} < {bound}${span} by Theorem~4.4, which the $C^2$ measured at $b^*$ "
            f"respects (largest: {fmt(row.value, 2)} of the bound)"
        )
    return (
        f"from which Theorem~4.4 gives {c2} < {bound}$ as an estimate{span}; the $C^2$ "
        "measured at $b^*$ neither confirms nor contradicts it"
        + (
            f" ({fmt(row.value, 2)} times the bound)"
            if row is not None and not pd.isna(row.value)
            else ""
        )
    )


def _cell(crit: pd.DataFrame, opt: str) -> pd.Series | None:
    rows = crit[crit.optimizer == opt]
    return rows.iloc[0] if len(rows) else None


def k2_sentence(var: pd.DataFrame, statistic: str) -> str:
    """Which K² feeds δ_SHB, and how far the largest recorded value is from the mean, in
    words."""
    if "shb" not in var.index or pd.isna(var.k2_sup.get("shb")):
        return "No $K^2$ was recorded for SHB."
    r = var.loc["shb"]
    sup = (
        f"the largest recorded value, {fmt(r.k2_sup)} ({tex_text(r.k2_sup_source)}), "
        f"is {fmt(r.k2_sup / r.k2_mean, 2)} times the mean"
    )
    points = var.k2_n_points.get("shb") if "k2_n_points" in var else None
    sampled = (
        f" of the {int(points)} values recorded along {int(r.k2_n_runs)} runs"
        if points is not None and not pd.isna(points)
        else ""
    )
    if statistic == "sup":
        return (
            f"The configuration uses the largest{sampled}, a bound over what was recorded "
            "(between recordings the trajectory may go higher, so it is a lower estimate of "
            f"the sup the theorem asks for): {sup}. The mean and the final value are "
            "the sensitivity."
        )
    return (
        f"The configuration uses the {statistic} instead of the bound the theorem asks for; {sup}."
    )


def loss_sentence(acc: pd.DataFrame, loss_max: float) -> str:
    """How many finished runs ended above the training-loss threshold, and their accuracy."""
    ok = collect.finished(acc)
    if ok.empty or math.isnan(loss_max):
        return ""
    above = ok[ok.train_loss > loss_max]
    below = ok[ok.train_loss <= loss_max]
    text = f"Here {len(above)} of the {len(ok)} finished runs end above it"
    if len(above) and len(below):
        text += (
            f"; their mean test accuracy is {100 * above.test_accuracy.mean():.1f}\\,\\%, against "
            f"{100 * below.test_accuracy.mean():.1f}\\,\\% for the others"
        )
    return text + "."


KIND_HEADINGS = {
    "finding": "Findings: statements the data could refute",
    "identity": "Identities: follow from the configuration and the formulas, never counted as held",
    "consistency": "Consistency: the inference chain against the pipeline's own measurements",
}


def claims_table(claims: pd.DataFrame | None) -> str:
    """The ledger as a longtable-free tabular in three blocks (findings, identities,
    consistency): claim (with what would have failed it, and the note), statistic,
    value [interval], threshold, n, verdict; every text typeset (:func:`tex_mixed`)."""
    if claims is None or claims.empty:
        return "No claim could be tested with this configuration.\n"
    rows = []
    kinds = claims.kind if "kind" in claims else pd.Series("finding", index=claims.index)
    for kind, heading in KIND_HEADINGS.items():
        part = claims[kinds == kind]
        if part.empty:
            continue
        rows.append([f"\\multicolumn{{6}}{{l}}{{\\textit{{{heading}}}}}"])
        for r in part.itertuples():
            ci = "--" if math.isnan(r.ci_low) else f"[{fmt(r.ci_low, 3)}, {fmt(r.ci_high, 3)}]"
            if kind == "identity":
                ci = ""
            fails = getattr(r, "fails_if", "")
            extra = [f"fails if {fails}" if fails and kind == "finding" else "", r.note]
            note = "".join(
                f" \\newline {{\\scriptsize\\itshape {tex_mixed(t)}}}" for t in extra if t
            )
            value = "--" if math.isnan(r.value) else fmt(r.value, 3)
            rows.append(
                [
                    tex_mixed(r.claim) + note,
                    tex_mixed(r.statistic),
                    f"{value} \\newline {ci}" if ci else value,
                    tex_mixed(r.threshold),
                    str(r.n),
                    f"\\textbf{{{r.verdict}}}",
                ]
            )
    align = "".join(
        f">{{\\raggedright\\arraybackslash}}p{{{w}}}" for w in ("4.8cm", "4.2cm", "2.1cm", "2.1cm")
    )
    header = " & ".join(
        ["claim", "statistic", "value [95\\,\\% interval]", "threshold", "$n$", "verdict"]
    )
    # A longtable: the ledger runs over more than a page.
    return "\n".join(
        [
            "{\\scriptsize\\setlength{\\tabcolsep}{3pt}\\renewcommand{\\arraystretch}{1.15}",
            f"\\begin{{longtable}}{{{align}rl}}",
            "\\caption{The claims ledger (\\texttt{tables/claims.parquet}).}"
            "\\label{tab:claims}\\\\",
            "\\toprule",
            header + r" \\",
            "\\midrule\\endfirsthead",
            "\\toprule",
            header + r" \\",
            "\\midrule\\endhead",
            *(" & ".join(r) + r" \\" for r in rows),
            "\\bottomrule",
            "\\end{longtable}}",
            "",
        ]
    )


def write_generated(
    out_dir: str | Path,
    config: dict,
    tables: dict[str, pd.DataFrame],
    figures: list[dict],
    benchmarks: list[str],
    device: str,
) -> list[Path]:
    """Write the generated TeX: numbers.tex (macros), claims.tex, comparison.tex, cbs.tex,
    figures.tex, sharpness.tex, noise.tex and reproducibility.tex. (provenance.tex is the
    PDF build's: ``write_provenance``.)"""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lr, eps = config["lr"], config["cbs"]["epsilon"]
    crit = tables["critical_batch_size"]
    crit = crit[(crit.lr - lr).abs() < 1e-12]
    var = tables["variance"]
    var = var[(var.lr - lr).abs() < 1e-12].set_index("optimizer")
    acc = tables["accuracy"]
    acc_main = acc[(acc.lr - lr).abs() < 1e-12]

    def runs_with(status: str) -> str:
        """How many runs, fixed-epoch and CBS together, have this status."""
        return str(int((acc.status == status).sum() + (tables["cbs_runs"].status == status).sum()))

    delta = tables["delta"]
    claims = tables.get("claims")
    opts = [o for o in ORDER if o in config["optimizers"]]
    k2_stat = config.get("k2_statistic", "mean")
    loss_max = config.get("claims", {}).get("train_loss_max", math.nan)
    counts = ledger_counts(claims)
    budget = config["cbs"].get("max_sfo")

    # numbers.tex: one macro per measured or configured number the text mentions.
    names = LABELS
    m = [
        _macro("Experiment", config["experiment"].replace("_", r"\_")),
        _macro(
            "Dataset",
            {
                "digits": "scikit-learn digits",
                "cifar100": "CIFAR-100",
                "fashion_mnist": "Fashion-MNIST",
            }[config["dataset"]],
        ),
        _macro(
            "Model",
            {
                "small_cnn": "a small CNN",
                "mnist_cnn": "a two-block CNN with a flattened head (50,282 parameters)",
                "resnet18": "ResNet-18",
            }[config["model"]],
        ),
        _macro("LearningRate", fmt(lr)),
        _macro("Epsilon", fmt(eps)),
        _macro("Momentum", fmt(max(config["optimizers"].values()))),
        _macro("BatchGrid", ", ".join(pow2(b) for b in sorted(config["batch_sizes"]))),
        _macro("CbsSeeds", str(len(config["cbs"]["seeds"]))),
        _macro("AccSeeds", str(len(config["accuracy"]["seeds"]))),
        _macro("Epochs", str(config["accuracy"]["epochs"])),
        _macro("MinEpochs", str(config["cbs"]["min_epochs"])),
        _macro(
            "Budget",
            (
                f"$\\lceil {fmt(budget)}/b\\rceil$ steps at batch size $b$ "
                f"(an SFO of at least {fmt(budget)}), "
                f"at most {fmt(config['cbs']['max_steps'])}"
            )
            if budget
            else f"{fmt(config['cbs']['max_steps'])} steps",
        ),
        _macro("NumCbsRuns", str(len(tables["cbs_runs"]))),
        _macro("NumAccRuns", str(len(acc))),
        # Every run whose budget ran out, those that ran out at chance (collapsed) included.
        _macro(
            "NumCensored",
            str(
                int(
                    (
                        ~tables["cbs_runs"].reached.astype(bool)
                        & (tables["cbs_runs"].status != "diverged")
                    ).sum()
                )
            ),
        ),
        _macro("NumDiverged", runs_with("diverged")),
        _macro("NumCollapsed", runs_with("collapsed")),
        _macro("CollapseRule", tex_text(collect.collapse_words(collect.collapse_settings(config)))),
        _macro(
            "NumUndeterminedBstar",
            str(
                int(sum(1 for o in opts if (c := _cell(crit, o)) is not None and not c.established))
            ),
        ),
        _macro(
            "KtwoStatistic",
            {
                "sup": "the largest value recorded in any run",
                "mean": "the mean over runs of each run's trajectory mean",
                "final": "the mean over runs of the last recorded value",
            }[k2_stat],
        ),
        _macro(
            "FullGradEpochs",
            ", ".join(
                str(e)
                for e in sorted(
                    set(config["accuracy"].get("full_grad_epochs", []))
                    | set(config.get("noise", {}).get("epochs", []))
                )
            )
            or "--",
        ),
        _macro("TrainLossMax", fmt(loss_max)),
        _macro(
            "LearnedSentence",
            learned_sentence(tables["cbs_runs"], config["cbs"].get("learned_loss")),
        ),
        _macro("KtwoSupSentence", k2_sentence(var, k2_stat)),
        _macro("LossSentence", loss_sentence(acc_main, loss_max)),
        _macro("NumClaims", str(len(claims) if claims is not None else 0)),
        # The abstract counts findings only; identities and consistency rows apart.
        *(_macro(name, str(n)) for name, n in counts.items()),
        _macro("InconsistentList", inconsistent_words(claims)),
        _macro("Device", device.replace("_", r"\_")),
        _macro("ComputeHours", fmt(benchmark_hours(benchmarks), 2)),
    ]
    for opt in ORDER:  # every optimizer's macros exist, "--" where the config has none
        c = _cell(crit, opt)
        b = float(c.critical_batch_size) if c is not None else math.nan  # NaN: no b*
        m.append(_macro(f"Bstar{names[opt]}", bstar_words(c)))
        m.append(_macro(f"Bstar{names[opt]}Value", fmt(b)))  # plain digits, for the text
        m.append(_macro(f"Ctwo{names[opt]}", fmt(var.c2_bound.get(opt, math.nan))))
        m.append(_macro(f"Ktwo{names[opt]}", fmt(var.k2.get(opt, math.nan))))
        for stat in ("sup", "mean", "final"):
            m.append(
                _macro(
                    f"Ktwo{names[opt]}{stat.capitalize()}",
                    fmt(var[f"k2_{stat}"].get(opt, math.nan)) if f"k2_{stat}" in var else "--",
                )
            )
    (out / "numbers.tex").write_text("".join(m))

    # bstar.tex: one generated sentence per optimizer. A C² bound is stated as holding only
    # where the ledger's consistency row does not contradict it.
    parts = []
    for opt in opts:
        c = _cell(crit, opt)
        if c is None:
            continue
        if pd.isna(c.critical_batch_size):  # no b*: said in words, no number
            parts.append(
                f"no $b^*_{{\\mathrm{{{names[opt]}}}}}$, as there is {tex_text(c.reason)}, "
                f"so {names[opt]} has no $C^2$ bound and no $\\delta$"
            )
        elif c.established:
            parts.append(
                f"$b^*_{{\\mathrm{{{names[opt]}}}}} = {fmt(c.critical_batch_size)}$ "
                f"(established; bootstrap "
                f"interval [{fmt(c.bstar_ci_low)}, {fmt(c.bstar_ci_high)}]"
                + interp_words(c)
                + "), "
                + c2_words(opt, var, claims)
            )
        else:
            parts.append(
                f"$b^*_{{\\mathrm{{{names[opt]}}}}}$ is {bstar_words(c)}, "
                f"so its $C^2$ bound ({fmt(var.c2_bound.get(opt, math.nan))}) "
                f"and $\\delta$ are provisional"
            )
    (out / "bstar.tex").write_text("This run finds " + "; ".join(parts) + ".\n" if parts else "")

    # claims.tex: the ledger.
    (out / "claims.tex").write_text(claims_table(claims))

    # comparison.tex: the article beside this run.
    rows = []
    for opt in opts:
        c = _cell(crit, opt)
        art_b = ARTICLE["critical_batch_size"][opt]
        art_c2 = theory.c2_upper_bound(
            opt, art_b, ARTICLE["epsilon"], ARTICLE["lr"], ARTICLE["beta"] if opt != "sgd" else 0
        )
        k = ARTICLE["k"][opt]
        art_k2 = f"{fmt(k**2, 3)} ($K={fmt(k)}$)" if k else "--"
        none = c is None or pd.isna(c.critical_batch_size)  # no b*, so no C² bound
        here_b = "none" if none else pow2(c.critical_batch_size) if c.established else "undet."
        rows.append(
            [
                LABELS[opt],
                pow2(art_b),
                here_b,
                fmt(float(art_c2), 5),
                "none" if none else fmt(var.c2_bound.get(opt, math.nan), 4),
                art_k2,
                fmt(var.k2.get(opt, math.nan), 3),
                ARTICLE["trend"][opt],
                accuracy_trend(acc_main, opt),
            ]
        )
    header = [
        r"",
        r"$b^*$ art.",
        r"$b^*$ here",
        r"$C^2$ art.",
        r"$C^2$ here",
        r"$K^2$ authors' code",
        r"$K^2$ here",
        r"accuracy vs $b$, article",
        r"accuracy vs $b$, here",
    ]
    body = _tabular(header, rows, "l" + "r" * 6 + "p{2.6cm}p{4.6cm}")
    (out / "comparison.tex").write_text("\\resizebox{\\textwidth}{!}{%\n" + body + "}\n")

    # cbs.tex: SFO at every batch size, with censored, diverged and collapsed runs counted.
    rows = []
    for r in crit.sort_values(["optimizer", "batch_size"]).itertuples():
        star = (r"$\star$" if r.established else r"$\star$?") if r.is_critical else ""
        lower = fmt(r.sfo_lower_mean) if r.n_censored else ""
        rows.append(
            [
                LABELS[r.optimizer],
                pow2(r.batch_size),
                fmt(r.sfo_mean),
                lower,
                f"{r.n_reached}/{r.n_runs}",
                str(r.n_censored),
                str(r.n_diverged),
                str(r.n_collapsed),
                f"{r.bootstrap_share:.2f}",
                star,
            ]
        )
    (out / "cbs.tex").write_text(
        _tabular(
            [
                "optimizer",
                "$b$",
                "mean SFO",
                "SFO lower bound",
                "reached",
                "censored",
                "diverged",
                "collapsed",
                "bootstrap share",
                "$b^*$",
            ],
            rows,
            "lrrrrrrrrc",
        )
    )

    # figures.tex: one float per figure file produced; the caption as the figure rule wrote
    # it (workflow/report/'s text, then the rule, code and commit), one paragraph in TeX.
    parts = []
    for f in figures:
        stem = Path(f["pdf"]).stem
        caption = " ".join(Path(f["caption"]).read_text(encoding="utf-8").split())
        parts.append(
            "\\begin{figure}[tbp]\n\\centering\n"
            f"\\includegraphics[width=\\linewidth,height=0.38\\textheight,keepaspectratio]{{{Path(f['pdf']).resolve()}}}\n"
            f"\\caption{{{tex_text(caption)}}}\n\\label{{fig:{stem}}}\n\\end{{figure}}\n"
        )
    (out / "figures.tex").write_text("\n".join(parts))

    # sharpness.tex: the Figure 8 section, present only when the config measured sharpness.
    adaptive = config.get("sharpness", {}).get("adaptive", True)
    (out / "sharpness.tex").write_text(
        sharpness_section(tables.get("correlations"), tables.get("sharpness"), adaptive)
    )

    # noise.tex: the measured counterparts of the article's bounds, when measured.
    (out / "noise.tex").write_text(noise_section(tables.get("noise"), var, crit, delta, lr, opts))

    # reproducibility.tex: versions and the commands.
    pkgs = ["torch", "torchvision", "numpy", "pandas", "pyarrow", "seaborn", "snakemake"]
    rows = [[p, metadata.version(p)] for p in pkgs] + [["python", platform.python_version()]]
    (out / "reproducibility.tex").write_text(_tabular(["package", "version"], rows, "ll"))
    return sorted(out.glob("*.tex"))


PREDICTORS = {
    "sharpness": "adaptive sharpness",
    "sharpness_plain": "plain sharpness",
    "delta": "$\\delta$",
}


def sharpness_section(
    corr: pd.DataFrame | None, sharp: pd.DataFrame | None, adaptive: bool = True
) -> str:
    """A subsection with the rank correlations of accuracy with both sharpness variants and δ:
    coefficients on all networks, intervals from the bootstrap over cells (η × b) and the
    seeds within them, with the networks, cells and valid replicates each row rests on."""
    if corr is None or sharp is None or corr.empty:
        return ""
    names = {
        "spearman": "Spearman $\\rho$",
        "kendall": "Kendall $\\tau$",
        "quadratic_ln_delta_curvature": "curvature $a$ of accuracy in $(\\ln\\delta)^2$",
        "quadratic_ln_delta_vertex": "$\\delta$ at the fitted peak",
    }
    rows = []
    for r in corr.itertuples():
        ci = "--" if math.isnan(r.ci_low) else f"[{fmt(r.ci_low, 2)}, {fmt(r.ci_high, 2)}]"
        rows.append(
            [
                PREDICTORS.get(r.predictor, tex_text(r.predictor)),
                names[r.method],
                fmt(r.coefficient, 3),
                ci,
                str(r.n),
                str(r.n_cells),
                f"{r.n_boot_valid}/{r.n_boot}" if r.n_boot else "--",
            ]
        )
    cells = int(corr.n_cells.max())
    rho = fmt(float(sharp.rho.iloc[0]))
    p = "\\infty" if sharp.p.iloc[0] == "inf" else sharp.p.iloc[0]
    measured = sharp.sharpness.notna().sum()
    return (
        "\\subsection*{Sharpness or smoothing?}\n"
        f"Figure~\\ref{{fig:fig8_sharpness}} measures the worst-case sharpness of {len(sharp)} "
        f"SGD networks ({measured} with a value; diverged networks have none) "
        f"($\\rho = {rho}$, $\\ell_{{{p}}}$ ball, Auto-PGD, "
        "BatchNorm in eval mode as in the authors' script) at learning rates "
        + ", ".join(fmt(x) for x in sorted(sharp.lr.unique()))
        + ", both adaptive (perturbations scaled by $|w|$) and plain: "
        "the authors' script has a flag for the choice, off by default, "
        "and no published command line says which they used. "
        f"The {'adaptive' if adaptive else 'plain'} variant is the one "
        f"Figure~\\ref{{fig:fig8_sharpness}} puts first "
        "and the ledger compares with $\\delta$ first. "
        "Table~\\ref{tab:correlations} gives the rank correlation of test accuracy with each "
        f"(95\\,\\% bootstrap intervals over its {cells} cells $\\eta \\times b$ and the seeds "
        "within them) and a quadratic fit of accuracy in $\\ln\\delta$.\n"
        "\\begin{table}[tbp]\n\\centering\n"
        "\\caption{Test accuracy against sharpness and against $\\delta$. Values on all $n$ "
        "networks; 95\\,\\% intervals from a bootstrap over the cells "
        f"(learning rate $\\times$ batch size, {cells} in all; a row's own in \\emph{{cells}}) "
        "drawn with replacement and the seeds within each drawn cell, not over networks: the "
        "seeds of a cell share its $\\delta$ and are not independent. \\emph{Replicates}: "
        "the bootstrap replicates with a value, of those drawn (one in which a variable is "
        "constant has none and is left out).}\n"
        "\\label{tab:correlations}\n"
        + _tabular(
            ["predictor", "statistic", "value", "95\\,\\% interval", "$n$", "cells", "replicates"],
            rows,
            "llrrrrr",
        )
        + "\\end{table}\n"
    )


def _bad(x: pd.Series) -> int:
    """Estimates that are NaN or not positive: counted, never dropped silently."""
    return int((~(x > 0)).sum())


def noise_section(
    noise: pd.DataFrame | None,
    var: pd.DataFrame,
    crit: pd.DataFrame,
    delta: pd.DataFrame,
    lr: float,
    opts: list[str],
) -> str:
    """A section setting measured C², K², δ and B_simple beside the inferred ones."""
    if noise is not None:  # the fixed-epoch runs' measurements (CBS runs': the ledger)
        noise = noise[noise.protocol == "epochs"]
    if noise is None or noise.empty:
        return ""
    n = noise[(noise.lr - lr).abs() < 1e-12]
    if n.empty:  # the table leaves out collapsed runs: here, all of those at the main η
        return (
            "\\section{Beyond the article: measured noise}\n"
            f"No fixed-epoch run at $\\eta = {fmt(lr)}$ has a noise measurement to report: "
            "the measurements of collapsed runs are left out, and these runs all collapsed.\n"
        )
    n = n[n.epoch == n.epoch.max()]
    d = delta[(delta.grid == "config") & ((delta.lr - lr).abs() < 1e-12)].astype(
        {"batch_size": "int64"}
    )
    m = n.merge(d[["optimizer", "batch_size", "delta"]], on=["optimizer", "batch_size"], how="left")
    rows = []
    for opt in opts:
        mine = m[m.optimizer == opt]
        if mine.empty:
            continue
        b = crit[crit.optimizer == opt]
        star = b[b.established & b.is_critical].batch_size
        none = b.critical_batch_size.isna().all()  # no b* at all, not just undetermined
        rows.append(
            [
                LABELS[opt],
                fmt(var.c2_bound.get(opt, math.nan), 3),
                f"{fmt(mine.c2.median(), 3)} [{fmt(mine.c2.min(), 2)}, {fmt(mine.c2.max(), 2)}]",
                fmt(mine.c2_per_example.median(), 3),
                fmt(mine.k2.median(), 3),
                fmt((mine.delta_empirical / mine.delta).median(), 2),
                fmt(mine.noise_scale.median(), 3),
                pow2(float(star.iloc[0])) if len(star) else "none" if none else "undet.",
            ]
        )
    rse = (n.c2_stderr / n.c2).median()
    ratio = (n.c2 / n.c2_per_example).median()
    n_pe = int(n.n_per_example.max()) if len(n) else 0
    measured = ["c2", "k2", "noise_scale", "direction_noise_sq"] + (
        ["c2_per_example"] if n_pe else []
    )
    counts = {k: _bad(n[k]) for k in measured}
    per_example = (
        f"the same from {n_pe} per-example gradients inside train-mode batches "
        f"(median ratio of the two: {fmt(ratio, 3)}; it is 1 without BatchNorm, "
        "and its distance from 1 measures how BatchNorm couples a batch's examples); "
        if n_pe
        else ""
    )
    functions = sorted(set(n.bn_mode))
    header = [
        "",
        "$C^2$ bound",
        "$C^2$ measured (median [range] over $b$)",
        "$C^2$ per-example",
        "$K^2$",
        r"$\delta_{\mathrm{emp}}/\delta$",
        r"$B_{\mathrm{simple}}$",
        "$b^*$",
    ]
    return (
        "\\section{Beyond the article: measured noise}\n"
        "The article infers $C^2$ from an inequality at $b^*$ and assumes the "
        "search-direction noise is as large as its bound. "
        "Here both are measured after epochs "
        + ", ".join(str(int(e)) for e in sorted(noise.epoch.unique()))
        + " of every fixed-epoch run (the table and figure use the last; the ledger's "
        "consistency rows use all) "
        "(Figure~\\ref{fig:fig9_measured_noise}, Table~\\ref{tab:noise}), "
        "all on the function the run descends, "
        f"$F_b$ (BatchNorm in {', '.join(functions)} mode on batches of the run's own $b$): "
        "$C^2 = b\\frac{n-1}{n-b}\\,\\overline{\\|g_B-\\nabla F_b\\|^2}$ over "
        f"{int(n.c2_batches.max())} batches per run, which is McCandlish et al.'s two-batch-size "
        "estimator~\\cite{mccandlish2018} with the sizes $b$ and $n$ in paired form, "
        "exact in expectation without BatchNorm and augmentation; "
        + per_example
        + "$K^2=\\|\\nabla F_b\\|^2$; the empirical degree of smoothing "
        "$\\delta_{\\mathrm{emp}} = \\eta\\sqrt{\\mathbb{E}\\|d_t - \\nabla F_b(x_t)\\|^2}$ "
        "from each optimizer's own direction $d_t$; "
        "and the gradient noise scale $B_{\\mathrm{simple}} = C^2/K^2$. "
        f"The median relative standard error of $C^2$ is {fmt(100 * rse, 2)}\\,\\%. "
        f"Estimates that are NaN or not positive, counted over the {len(n)} runs "
        f"rather than dropped: $C^2$ {counts['c2']}, "
        + (f"per-example $C^2$ {counts['c2_per_example']}, " if n_pe else "")
        + f"$K^2$ {counts['k2']}, $B_{{\\mathrm{{simple}}}}$ {counts['noise_scale']}, "
        f"direction noise {counts['direction_noise_sq']}. "
        f"The measurements took {fmt(n.seconds.sum(), 3)}\\,s in all.\n"
        "\\begin{table}[tbp]\n\\centering\n"
        "\\caption{Inferred and measured noise, medians over the batch sizes of "
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


def build_pdf(
    source: str | Path, generated: str | Path, pdf: str | Path, log: str | Path | None = None
) -> None:
    """Compile ``source``/paper.tex with latexmk into ``pdf``; fail loudly on broken refs."""
    source, generated, pdf = Path(source).resolve(), Path(generated).resolve(), Path(pdf).resolve()
    build = pdf.parent / "build"
    safe_rmtree(build, pdf.parent, ignore_errors=True)  # refused if build/ links elsewhere
    build.mkdir(parents=True)
    for f in source.iterdir():
        if f.suffix in (".tex", ".bib", ".sty"):
            shutil.copy(f, build / f.name)
    (build / "generated").symlink_to(generated)
    cmd = [
        "latexmk",
        "-pdf",
        "-interaction=nonstopmode",
        "-halt-on-error",
        "-file-line-error",
        "paper.tex",
    ]
    proc = subprocess.run(cmd, cwd=build, capture_output=True, text=True)
    texlog = (
        (build / "paper.log").read_text(errors="replace") if (build / "paper.log").exists() else ""
    )
    if log:
        Path(log).write_text(proc.stdout + proc.stderr + texlog)
    if proc.returncode != 0:  # TeX's own error lines (file:line: message) say what broke
        errors = [line for line in texlog.splitlines() if re.match(r"^(!|\./.*:\d+:)", line)]
        tail = "\n".join(errors[:10] or (proc.stdout + proc.stderr).splitlines()[-30:])
        raise PaperBuildError(f"latexmk failed for {source / 'paper.tex'}:\n{tail}")
    problems = [line for line in texlog.splitlines() if any(p.search(line) for p in _FAILURES)]
    if problems:
        raise PaperBuildError(
            f"{source / 'paper.tex'} built with problems:\n" + "\n".join(problems)
        )
    shutil.copy(build / "paper.pdf", pdf)
