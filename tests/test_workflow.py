"""The Snakemake workflow for real: a tiny config run end to end in a temporary copy, then
what reruns after each kind of change, the article's plan, and bad configs."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sgdsmooth import archive, grid, tables

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())

TINY = {
    "experiment": "tiny",
    "dataset": "digits",
    "model": "small_cnn",
    "device": "cpu",
    "lr": 0.1,
    "optimizers": {"sgd": 0.0, "shb": 0.9, "nshb": 0.9},
    "batch_sizes": [128, 256],
    # The loss gate (2.0 < 0.95·ln 10, where a run counts as collapsed) keeps the CBS runs from
    # stopping at step 1, at chance loss, where every gradient norm is below ε.
    "cbs": {
        "epsilon": 1.2,
        "seeds": [0, 1],
        "max_steps": 40,
        "bootstrap": 50,
        "learned_loss": 2.0,
    },
    "accuracy": {"epochs": 2, "seeds": [0], "full_grad_epochs": [2]},
    # η = 1e20 diverges within two steps: the tables must carry it as diverged, not drop it.
    # η = 10 neither diverges nor learns (its loss stays at chance): the analysis must mark its
    # runs collapsed and keep them out of b*, K², δ and the correlations.
    "sharpness": {
        "lrs": [0.1, 0.2, 10, 1e20],
        "batch_sizes": [128],
        "n_examples": 256,
        "iterations": 3,
    },
    "noise": {"epochs": [2], "batches": 2, "per_example": 32, "cbs_at_stop": True},
    "figures": {"accuracy_bands": [0.3, 0.5]},
    # At b = 128 every run of a protocol (all optimizers, Figure 8's η, all seeds) is one job
    # and one population.
    "train": {"population_max_batch": 128, "population_jobs": "batch_size"},
}


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def copy_workflow(dest: Path) -> Path:
    for name in ("Snakefile", "workflow", "config", "paper", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def smk(
    workdir: Path, *args, config: dict | None = None, check=True
) -> subprocess.CompletedProcess:
    if config is not None:
        (workdir / "config" / "test.yaml").write_text(yaml.safe_dump(config))
    cmd = SNAKEMAKE + ["--cores", "2", "--configfile", "config/test.yaml", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}; {} when nothing is to be done."""
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    block = out.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m[1]] = int(m[2])
    counts.pop("total", None)
    return counts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A finished tiny run (shared by the tests below, which only dry-run changes on it)."""
    work = copy_workflow(tmp_path_factory.mktemp("wf"))
    smk(work, config=TINY)
    return work


def test_tiny_run_produces_every_table_figure_and_the_paper(tiny):
    r = tiny / "results" / "tiny"
    for name in (
        "cbs_runs",
        "critical_batch_size",
        "k2",
        "variance",
        "delta",
        "accuracy",
        "sharpness",
        "correlations",
        "noise",
        "claims",
    ):
        assert (r / "tables" / f"{name}.parquet").exists(), name
    for fig in (
        "fig3_rastrigin",
        "fig4_sfo",
        "fig5_delta",
        "fig6_accuracy",
        "fig7_delta_accuracy",
        "fig8_sharpness",
        "fig9_measured_noise",
    ):
        for ext in ("pdf", "png"):
            assert (r / "figures" / f"{fig}.{ext}").stat().st_size > 1000, fig
    assert (r / "paper" / "paper.pdf").exists()
    logs = r / "logs" / "train_cbs" / "eps1.2"
    # At b = 128 every CBS run (3 optimizers and Figure 8's η, 2 seeds: a collapsing η = 10
    # and a diverging 1e20 among them) trains in one population; at b = 256 one run at a time.
    assert "training 12 run(s) together:" in (logs / "population" / "b128.log").read_text()
    assert "together" not in (logs / "sgd" / "lr0.1" / "beta0" / "b256.log").read_text()
    assert not (logs / "sgd" / "lr0.1" / "beta0" / "b128.log").exists()
    runs = tables.read_table(r / "tables" / "cbs_runs.parquet", "cbs_runs")
    # 3 optimizers × 2 batch sizes × 2 seeds, plus SGD at η = 0.2, 10 and 1e20 on both: Figure
    # 8's CBS runs cover the main grid, so that b* can be located at each η.
    assert len(runs) == 3 * 2 * 2 + 3 * 2 * 2
    by_lr = {lr: set(g.status) for lr, g in runs.groupby("lr")}
    assert by_lr[1e20] == {"diverged"}
    # at (or, one seed, just under) chance loss when its budget ran out: none reached ε
    assert "collapsed" in by_lr[10] and by_lr[10] <= {"collapsed", "censored"}
    assert by_lr[0.1] | by_lr[0.2] <= {"reached", "censored"}
    # The rule, as the table applies it: at or above 0.95·ln 10 and not diverged.
    at_chance = (runs.train_loss >= 0.95 * np.log(10)) & (runs.status != "diverged")
    assert (at_chance == (runs.status == "collapsed")).all()
    crit = tables.read_table(r / "tables" / "critical_batch_size.parquet", "critical_batch_size")
    dead = crit[crit.lr == 10]
    assert dead.critical_batch_size.isna().all() and not dead.established.any()
    n_dead = (
        runs[runs.lr == 10].groupby("batch_size").status.apply(lambda s: (s == "collapsed").sum())
    )
    assert (
        dead.set_index("batch_size").n_collapsed.sort_index().tolist()
        == n_dead.sort_index().tolist()
    )
    assert (dead.n_reached == 0).all() and "collapsed" in dead.reason.iloc[0]
    assert crit[crit.lr == 0.1].critical_batch_size.notna().all()  # the gate keeps b* there
    acc = tables.read_table(r / "tables" / "accuracy.parquet", "accuracy")
    assert len(acc) == 3 * 2 + 3
    assert (
        set(acc[acc.lr == 1e20].status) == {"diverged"}
        and acc[acc.lr == 1e20].test_accuracy.isna().all()
    )
    assert set(acc[acc.lr == 10].status) == {"collapsed"}
    # Two epochs are too few for some small-η cells (NSHB at b = 256 ends at chance loss): the
    # rule, not the learning rate, decides.
    learning = acc[acc.lr < 1]
    chance = (learning.train_loss >= 0.95 * np.log(10)) | (learning.test_accuracy <= 0.12)
    assert (chance == (learning.status == "collapsed")).all() and (~chance).sum() >= 4
    # Collapsed runs have no part in K² (nor, through it, in δ) or in the measured noise…
    k2 = tables.read_table(r / "tables" / "k2.parquet", "k2")
    assert len(k2) == (acc.status == "ok").sum()  # one seed per cell: one K² row per ok run
    assert set(k2.lr) == {0.1, 0.2}
    sharp = tables.read_table(r / "tables" / "sharpness.parquet", "sharpness")
    assert (
        sharp[sharp.lr == 1e20].sharpness.isna().all()
        and sharp[sharp.lr < 1e20].sharpness.notna().all()
    )
    noise = tables.read_table(r / "tables" / "noise.parquet", "noise")
    keys = ["optimizer", "lr", "beta", "batch_size", "seed"]
    fixed, along = noise[noise.protocol == "epochs"], noise[noise.protocol == "cbs"]
    measured = fixed[keys].drop_duplicates().merge(acc[keys + ["status"]], on=keys)
    assert len(measured) and set(measured.status) == {"ok"}  # no collapsed run's noise
    # C² where each CBS run stopped (noise.cbs_at_stop), none of a collapsed or diverged run
    stopped = along[keys + ["step"]].merge(runs[keys + ["status", "steps"]], on=keys)
    assert len(stopped) == runs.status.isin(["reached", "censored"]).sum()
    assert set(stopped.status) <= {"reached", "censored"} and (stopped.step >= stopped.steps).all()
    # …but their networks' accuracy and sharpness are results: the correlations count η = 10's.
    corr = tables.read_table(r / "tables" / "correlations.parquet", "correlations")
    measured = sharp[sharp.sharpness.notna()]
    assert 10 in set(measured.lr)
    assert set(corr[corr.predictor == "sharpness"].n) == {len(measured)}
    # …and resample their cells (η × b), not the networks as if independent.
    cells = len(measured[["optimizer", "lr", "beta", "batch_size"]].drop_duplicates())
    assert set(corr[corr.predictor == "sharpness"].n_cells) == {cells}


def test_second_run_schedules_nothing(tiny):
    assert planned(smk(tiny, "-n")) == {}


def edited(path: Path) -> "contextlib.AbstractContextManager":
    """Append a comment to a file for the duration of a block. (Touching is not enough:
    Snakemake 9 compares the content of small inputs, not only their times.)"""

    @contextlib.contextmanager
    def block():
        original = path.read_text()
        path.write_text(original + "\n# edited\n")
        try:
            yield
        finally:
            path.write_text(original)

    return block()


def test_editing_fig4_code_reruns_only_fig4_and_the_paper(tiny):
    with edited(tiny / "workflow" / "sgdsmooth" / "figures" / "fig4_sfo.py"):
        assert planned(smk(tiny, "-n")) == {"fig4": 1, "paper_generated": 1, "paper": 1, "all": 1}


def test_editing_a_module_reruns_every_rule_that_imports_it_even_indirectly(tiny):
    """A rule's code inputs are its modules and all that they import (sources.py): names.py,
    which the collapse rule (via collect), the configs and the models read, reruns training
    and the tables; collect.py reruns the tables and the paper, not training."""
    with edited(tiny / "workflow" / "sgdsmooth" / "names.py"):
        plan = planned(smk(tiny, "-n"))
    assert {"train_cbs", "train_epochs", "cbs_runs", "accuracy", "paper_generated"} <= set(plan)
    with edited(tiny / "workflow" / "sgdsmooth" / "collect.py"):
        plan = planned(smk(tiny, "-n"))
    assert {"cbs_runs", "accuracy", "k2", "noise_table", "claims", "paper_generated"} <= set(plan)
    assert not any(rule.startswith("train") for rule in plan)


def test_editing_the_paper_text_rebuilds_only_the_pdf(tiny):
    with edited(tiny / "paper" / "paper.tex"):
        assert planned(smk(tiny, "-n")) == {"paper": 1, "all": 1}


def test_a_config_on_the_command_line_replaces_the_default(tiny):
    only_two = TINY | {"optimizers": {"sgd": 0.0, "shb": 0.9}}
    plan = planned(smk(tiny, "-n", "--forceall", config=only_two))
    smk(tiny, "-n", config=TINY)
    # No NSHB cells from config/config.yaml: at b = 256 SHB and SGD at η = 0.1 and Figure 8's
    # three other η (whose CBS runs cover the main grid); b = 128 is one population job.
    assert plan["train_cbs"] == 1 + 4 and plan["train_cbs_population_b128"] == 1


def test_adding_a_batch_size_trains_only_the_new_runs(tiny):
    bigger = TINY | {"batch_sizes": [64, 128, 256]}
    plan = planned(smk(tiny, "-n", config=bigger))
    smk(tiny, "-n", config=TINY)  # leave the shared config as it was
    # b = 64 ≤ population_max_batch: one population job per protocol holds its new cells (one
    # per optimizer, and CBS runs of Figure 8's three other η: b* is located on the main grid).
    assert plan["train_cbs_population_b64"] == 1 and plan["train_epochs_population_b64"] == 1
    assert not {"train_cbs", "train_epochs"} & set(plan)
    for rule in (
        "cbs_runs",
        "critical_batch_size",
        "variance",
        "delta",
        "accuracy",
        "fig4",
        "fig6",
        "paper",
    ):
        assert plan[rule] == 1


def test_changing_epsilon_reruns_cbs_runs_only(tiny):
    plan = planned(smk(tiny, "-n", config=TINY | {"cbs": TINY["cbs"] | {"epsilon": 1.1}}))
    smk(tiny, "-n", config=TINY)
    # b = 128 is one population; at b = 256 three optimizers and Figure 8's three other η.
    assert plan["train_cbs"] == 3 + 3 and plan["train_cbs_population_b128"] == 1
    assert not any(rule.startswith("train_epochs") for rule in plan)


def test_a_deleted_final_pt_retrains_its_cell(tmp_path):
    """#17: a deleted final.pt of a cell outside Figure 8 (whose sharpness rule is the only
    reader of final weights) was never rebuilt. On a tree of empty stand-ins for every output
    and benchmark, marked up to date (--touch), so that no training is needed to see the plan."""
    work = copy_workflow(tmp_path)
    plan = smk(work, "-n", config=TINY).stdout
    files = re.findall(r"^\s+(?:output|benchmark): (.+)$", plan, flags=re.M)
    for path in (work / p for line in files for p in line.split(", ")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    smk(work, "--touch")
    assert planned(smk(work, "-n")) == {}
    cell = work / "results" / "tiny" / "runs" / "epochs" / "shb" / "lr0.1" / "beta0.9" / "b256"
    (cell / "seed0" / "final.pt").unlink()
    plan = planned(smk(work, "-n"))
    assert plan["train_epochs"] == 1 and "train_cbs" not in plan and "train_epochs_lrs" not in plan


def test_the_articles_grid_plans_without_data_or_gpu(tmp_path):
    work = copy_workflow(tmp_path)
    shutil.copy(ROOT / "config" / "paper.yaml", work / "config" / "test.yaml")
    proc = smk(work, "-n")
    plan = planned(proc)
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    main = {(o, b) for o in cfg["optimizers"] for b in cfg["batch_sizes"]}
    extra = {
        ("sgd", lr, b) for lr in cfg["sharpness"]["lrs"] for b in cfg["sharpness"]["batch_sizes"]
    }
    extra -= {("sgd", cfg["lr"], b) for b in cfg["batch_sizes"]}
    cells = len(main) + len(extra)  # 3 × 11 + (4 × 13 − 11) = 74 cells
    # At b ≤ 64 (train.population_jobs: batch_size) every cell of a batch size is one job.
    limit = cfg["train"]["population_max_batch"]
    sizes = sorted({b for *_, b in grid.cells(grid.with_defaults(cfg, SCHEMA), "cbs")})
    pop_sizes = [b for b in sizes if b <= limit]
    for protocol in ("cbs", "epochs"):
        jobs = [
            j for j in grid.training_jobs(grid.with_defaults(cfg, SCHEMA)) if j.protocol == protocol
        ]
        singles = [j for j in jobs if len(j.cells) == 1]
        # The jobs the benchmarks' projection counts (sgdsmooth.grid) are the ones planned.
        assert plan[f"train_{protocol}"] == len(singles)
        assert all(b > limit for j in singles for b in [j.batch_size])
        assert sorted(j.batch_size for j in jobs if len(j.cells) > 1) == pop_sizes
        assert all(plan[f"train_{protocol}_population_b{b}"] == 1 for b in pop_sizes)
        assert sum(len(j.cells) for j in jobs) == cells
    assert plan["download_cifar100"] == 1
    assert plan["sharpness"] == 4 * 13  # one job per (η, b), measuring all 7 seeds
    assert plan["fig8"] == 1 and plan["paper"] == 1
    # Every training and sharpness job asks for one GPU; nothing else does.
    training = len(grid.training_jobs(grid.with_defaults(cfg, SCHEMA)))
    assert proc.stdout.count("gpu=1") == training + plan["sharpness"]


ACC = TINY["accuracy"]  # 2 epochs


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"lr": "fast"}, "lr"),
        ({"model": "mnist_cnn"}, "model: mnist_cnn's head"),
        ({"data_subset": 5000}, "data_subset: exceeds"),
        ({"batch_sizes": []}, "batch_sizes"),
        ({"batch_sizes": [64, 4096]}, "batch_sizes"),
        ({"cbs": {"epsilon": 0, "seeds": [0]}}, "epsilon"),
        ({"train": {"compile": True, "cuda_graph_max_batch": 64}}, "cuda_graph_max_batch"),
        # Keys that no longer exist (noise.small, noise.big) are unknown keys, named.
        ({"noise": {"epochs": [2], "small": 64, "big": 32}}, "('big', 'small' were unexpected)"),
        # A measurement after the last epoch would never happen: an empty table, a blank Fig. 9.
        ({"noise": {"epochs": [2, 3]}}, "noise.epochs: [3] lie beyond the last epoch"),
        (
            {"accuracy": ACC | {"full_grad_epochs": [2, 5]}},
            "accuracy.full_grad_epochs: [5] lie beyond the last epoch",
        ),
        (
            {"figures": {"accuracy_bands": [0.5, 0.3]}},
            "figures.accuracy_bands: must be [low, high]",
        ),
        (
            {"claims": {"article_delta_range": [1.0, 0.2]}},
            "claims.article_delta_range: must be [low, high]",
        ),
        # A threshold no statistic can pass, or a budget the runs never reach, is refused.
        ({"claims": {"floor_share": 1}}, "claims.floor_share: must be < 1"),
        ({"claims": {"early_epoch": 3}}, "claims.early_epoch: 3 lies beyond the last epoch"),
        ({"claims": {"consistency_factor": 1}}, "On instance['claims']['consistency_factor']"),
        (
            {"accuracy": ACC | {"full_grad_epochs": 2}},
            "On instance['accuracy']['full_grad_epochs']",
        ),
        ({"accuracy": ACC | {"epochs": 2.5}}, "On instance['accuracy']['epochs']"),
        # JSON Schema counts 2.0 as an integer; YAML reads it as a float: refused too.
        ({"accuracy": ACC | {"epochs": 2.0}}, "accuracy.epochs: must be a whole number"),
        ({"batch_sizes": [128, 256.0]}, "batch_sizes[1]: must be a whole number"),
        ({"cbs": TINY["cbs"] | {"seeds": [0, -1]}}, "On instance['cbs']['seeds'][1]"),
        ({"accuracy": ACC | {"seeds": [-1]}}, "On instance['accuracy']['seeds'][0]"),
        # Through the command line's --config, whose values Snakemake parses itself.
        (["lr=fast"], "On instance['lr']"),
        (["lr=-1"], "On instance['lr']"),
        (["data_subset=500.0"], "data_subset: must be a whole number"),
        # A folder name must stay in its folder: archive/.. is the checkout, archive/. all
        # archives, and the archive rule empties its folder.
        # Two equal values of a grid would train into one folder and count as one cell.
        (
            {"sharpness": TINY["sharpness"] | {"lrs": [0.1, 0.2, 0.1]}},
            "sharpness.lrs: 0.1 and 0.1 are one value",
        ),
        ({"noise": {"epochs": [2, 2]}}, "noise.epochs: 2 and 2 are one value"),
        ({"experiment": ".."}, "experiment: must be a plain name"),
        (["experiment=."], "experiment: must be a plain name"),
        (["experiment=a/../.."], "experiment: must be a plain name"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, change, message):
    """A bad config (a change to TINY, or a list of --config entries on the command line)
    fails the dry run, naming the key, before any job."""
    work = copy_workflow(tmp_path)
    if isinstance(change, list):
        proc = smk(work, "-n", "--config", *change, config=TINY, check=False)
    else:
        proc = smk(work, "-n", config=TINY | change, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (work / "results").exists()


def test_archiving_an_experiment_named_dotdot_is_refused_before_anything_is_deleted(tmp_path):
    work = copy_workflow(tmp_path)
    (work / "config" / "test.yaml").write_text(yaml.safe_dump(TINY))
    before = sorted(p for p in work.rglob("*") if ".snakemake" not in p.parts)
    proc = smk(work, "--config", "experiment=..", "--", "archive", check=False)
    assert proc.returncode != 0 and "experiment: must be a plain name" in proc.stderr
    assert sorted(p for p in work.rglob("*") if ".snakemake" not in p.parts) == before


def test_a_run_trains_the_learning_rate_the_config_gives_to_every_digit(tmp_path):
    # '%g' wrote η = 0.1234567 as lr0.123457 and the run read 0.123457 back from its path.
    work = copy_workflow(tmp_path)
    run = "results/tiny/runs/epochs/sgd/lr0.1234567/beta0/b256/seed0/metrics.parquet"
    smk(work, "--", run, config=TINY | {"lr": 0.1234567})
    meta = tables.read_metadata(work / run)
    assert meta["config"]["lr"] == 0.1234567
    assert tables.read_table(work / run, "epochs").lr.iloc[0] == 0.1234567


@pytest.mark.skipif(torch_cuda(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_refused_in_one_line_before_any_job(tmp_path):
    work = copy_workflow(tmp_path)
    proc = smk(work, "--config", "device=cuda", config=TINY, check=False)
    assert proc.returncode != 0
    (line,) = [x for x in (proc.stdout + proc.stderr).splitlines() if "device: cuda" in x]
    assert line.startswith("device: cuda, but this machine has no CUDA device")
    assert "Traceback" not in proc.stdout + proc.stderr and not (work / "results").exists()
    # Planning needs no GPU (the article's grid is planned anywhere), nor does a target
    # that trains nothing.
    smk(work, "-n", "--config", "device=cuda")
    smk(work, "--config", "device=cuda", "--", "fig3")


def test_paper_reports_what_was_measured(tiny):
    r = tiny / "results" / "tiny"
    text = subprocess.run(
        ["pdftotext", str(r / "paper" / "paper.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    crit = tables.read_table(r / "tables" / "critical_batch_size.parquet", "critical_batch_size")
    crit = crit[crit.lr == TINY["lr"]]
    for opt, label in (("sgd", "SGD"), ("shb", "SHB"), ("nshb", "NSHB")):
        cell = crit[crit.optimizer == opt].iloc[0]
        if np.isnan(cell.critical_batch_size):  # no b* (its runs collapsed): said in words
            assert re.search(rf"no\s+b\W*{label}\s*,\s+as\s+there\s+is", text), (
                f"the missing b* of {label} not in the paper"
            )
        elif cell.established:
            b = int(cell.critical_batch_size)
            assert re.search(rf"b\W*{label}\s*=\s*{b}\b", text), (
                f"b* of {label} ({b}) not in the paper"
            )
        else:  # a two-point grid: b* sits at an end of it, and the paper says so in words
            assert re.search(rf"b\W*{label}\s+is\s+undetermined", text), (
                f"undetermined b* of {label} not in the paper"
            )
    assert "--1" not in text and "??" not in text  # no sentinel, no broken reference
    runs = tables.read_table(r / "tables" / "cbs_runs.parquet", "cbs_runs")
    acc = tables.read_table(r / "tables" / "accuracy.parquet", "accuracy")
    n_collapsed = (runs.status == "collapsed").sum() + (acc.status == "collapsed").sum()
    assert n_collapsed >= 4 + 1  # at least η = 10's CBS runs and its fixed-epoch run
    assert re.search(rf"Collapsed\s+runs:\s+{n_collapsed};\s+a\s+run\s+that", text)
    claims = tables.read_table(r / "tables" / "claims.parquet", "claims")
    findings = claims[claims.kind == "finding"]
    held = int((findings.verdict == "held").sum())
    quoted = rf"Of the {len(findings)} findings tested here".replace(" ", r"\s+")
    assert re.search(quoted, text), "the abstract does not count the findings"
    assert re.search(rf"refute\),\s+{held}\s+held", text), "the abstract's held is not findings'"
    # Identities and consistency checks are counted apart, never as held.
    n_id = int((claims.kind == "identity").sum())
    n_cons = int((claims.kind == "consistency").sum())
    assert re.search(rf"ledger\s+prints\s+{n_id}\s+identities", text)
    assert re.search(rf"{n_cons}\s+checks\s+of\s+the\s+article", text)
    ledger = text[text.index("The claims ledger (tables/claims.parquet)") :]
    ledger = ledger[: ledger.index("Setup of this run")]
    for plain in ("b*_", "sqrt(", "ε·", "log2("):  # the ledger is typeset, not plain strings
        assert plain not in ledger, plain
    figures = sorted((r / "figures").glob("*.pdf"))
    captions = re.findall(r"^Figure \d+:", text, flags=re.M)
    assert len(captions) == len(figures) == 7


@pytest.fixture(scope="module")
def html_report(tiny) -> Path:
    smk(tiny, "--report", "report.html")
    return tiny / "report.html"


def test_html_report_has_every_figure_with_its_caption(html_report):
    html = html_report.read_text(errors="replace")
    for caption in (ROOT / "workflow" / "report").glob("*.rst"):
        assert caption.stem in html, caption.stem
    assert "critical batch size" in html  # a phrase from fig4's caption


# The report is a React app whose figures and captions sit in a script as data, so the text
# check above cannot tell whether a browser shows them. This script, added at the end of a copy
# of the report, uses the report as a reader does: opens the figures' category from the menu,
# then for each figure clicks its eye button (the figure appears) and its info button (the
# caption appears), and goes back by the breadcrumbs. It records what the browser made of each:
# the image's size and its pixels, decoded by drawing it on a canvas (ink: pixels that are not
# near-white; rgb: the sum of all channels), its width on screen, and the caption's rendered
# text. Then the page becomes that record, as JSON, for --dump-dom to hand back.
REPORT_WALKER = r"""
(async () => {
    const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
    const until = async (what, found) => {
        for (let i = 0; i < 400; i++) {
            const value = found();
            if (value) return value;
            await sleep(25);
        }
        throw new Error("timed out waiting for " + what);
    };
    const nav = () => document.querySelector("nav");
    const link = (selector, text) =>
        [...nav().querySelectorAll(selector)].find((a) => a.textContent.trim() === text);
    const rows = () => [...nav().querySelectorAll("tbody tr")];
    const seen = { figures: {} };
    try {
        // The menu names a lone category "Results", several by their names.
        const menu = await until("the menu", () => nav() &&
            (link("ul > li > a", "Figures") || link("ul > li > a", "Results")));
        menu.click();
        const n = await until("the list of figures", () => rows().length);
        for (let i = 0; i < n; i++) {
            if (i > 0) {
                link("ol a", "Figures").click();
                await until("the list again",
                    () => !nav().querySelector("li.prose") && rows().length === n);
            }
            const row = rows()[i];
            const path = row.querySelector("td").textContent.trim();
            const [eye, info] = row.querySelectorAll("[role=group] a");
            eye.click();
            const img = await until(path + " on screen", () =>
                [...document.querySelectorAll("#app img")].find(
                    (im) => !im.closest("nav") && im.src === results[path].data_uri));
            await until(path + " loaded", () => img.complete);
            const figure = { width: img.naturalWidth, height: img.naturalHeight,
                             shown: img.getBoundingClientRect().width, ink: 0, rgb: 0 };
            if (img.naturalWidth > 0) {
                const canvas = document.createElement("canvas");
                canvas.width = img.naturalWidth;
                canvas.height = img.naturalHeight;
                const context = canvas.getContext("2d");
                context.drawImage(img, 0, 0);
                const px = context.getImageData(0, 0, canvas.width, canvas.height).data;
                for (let k = 0; k < px.length; k += 4) {
                    const sum = px[k] + px[k + 1] + px[k + 2];
                    figure.rgb += sum;
                    if (sum < 600) figure.ink++;
                }
            }
            info.click();
            const caption = await until(path + "'s caption", () => nav().querySelector("li.prose"));
            figure.caption = caption.innerText;
            seen.figures[path] = figure;
        }
    } catch (err) {
        seen.error = String(err);
    }
    const pre = document.createElement("pre");
    pre.id = "browser-check";
    pre.textContent = JSON.stringify(seen);
    document.head.replaceChildren();
    document.body.replaceChildren(pre);
})();
"""
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def pixels(png: Path) -> tuple[int, int, int, int]:
    """(width, height, ink, rgb) of a PNG file, counted as REPORT_WALKER counts them."""
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int64)
    sums = rgb.sum(axis=2)
    return rgb.shape[1], rgb.shape[0], int((sums < 600).sum()), int(sums.sum())


def test_html_report_shows_every_figure_and_its_caption_in_a_browser(html_report, tmp_path):
    chromium = next(filter(None, map(shutil.which, BROWSERS)), None)
    if chromium is None:
        why = f"no browser on PATH ({', '.join(BROWSERS)}); bin/setup installs chromium as root"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    head, tail = html_report.read_text(encoding="utf-8").rsplit("</body>", 1)
    page = tmp_path / "report.html"
    page.write_text(f"{head}<script>{REPORT_WALKER}</script>\n</body>{tail}", encoding="utf-8")
    # Virtual time runs the walker's waits at once; as root, Chromium needs --no-sandbox.
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=60000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        encoding="utf-8",
        timeout=300,
    )
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', proc.stdout, flags=re.S)
    assert found, (
        f"{chromium} did not finish the walk (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    )
    seen = json.loads(unescape(found[1]))
    assert "error" not in seen, seen["error"]
    captions = {rst.stem: rst for rst in (ROOT / "workflow" / "report").glob("*.rst")}
    assert sorted(Path(path).stem for path in seen["figures"]) == sorted(captions)
    for path, figure in seen["figures"].items():
        stem = Path(path).stem
        # The very pixels of the PNG, decoded by the browser, and not blank; shown on screen.
        drawn = (figure["width"], figure["height"], figure["ink"], figure["rgb"])
        assert drawn == pixels(html_report.parent / path), stem
        assert figure["ink"] > 0 and figure["shown"] > 0, stem
        # The caption rendered from reStructuredText (no ``literal`` left raw), the .rst's whole
        # text in it; the report may add to it (where the figure came from).
        shown = " ".join(figure["caption"].split())
        written = " ".join(captions[stem].read_text(encoding="utf-8").replace("``", "").split())
        assert written in shown and "``" not in shown, (stem, shown)


TRAINING_OR_TABLES = {
    "train_cbs",
    "train_cbs_lrs",
    "train_epochs",
    "train_epochs_lrs",
    "sharpness",
    "noise_table",
    "cbs_runs",
    "critical_batch_size",
    "k2",
    "variance",
    "delta",
    "accuracy",
    "sharpness_table",
    "correlations",
    "claims",
    "download_cifar100",
}
REBUILT = {
    "fig3",
    "fig4",
    "fig5",
    "fig6",
    "fig7",
    "fig8",
    "fig9",
    "paper_generated",
    "paper",
    "all",
}


@pytest.fixture(scope="module")
def archived(tiny, tmp_path_factory):
    """The tiny run archived from a clean git commit, and a fresh copy of the workflow that
    has that archive but no results/ (the state of a new clone of a repository with it)."""
    (tiny / ".gitignore").write_text("results/\n.snakemake/\n__pycache__/\nreport.html\n")
    (tiny / "config" / "test.yaml").write_text(
        yaml.safe_dump(TINY)
    )  # the run's config, as committed
    git = ["git", "-C", str(tiny), "-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "tiny"], check=True)
    commit = subprocess.run(
        git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert planned(smk(tiny, "-n", "archive")) == {
        "archive": 1
    }  # a finished run: archiving trains nothing
    smk(tiny, "--", "archive")  # (after --configfile, which would take it for a file)
    fresh = copy_workflow(tmp_path_factory.mktemp("clone"))
    shutil.copytree(tiny / "archive", fresh / "archive")
    # The config the archive was measured with, as its README tells to rebuild with.
    shutil.copy(fresh / "archive" / "tiny" / "config.yaml", fresh / "config" / "test.yaml")
    return tiny, fresh, commit


def test_archive_holds_tables_figures_paper_and_a_stamp(archived):
    tiny, _, commit = archived
    a, r = tiny / "archive" / "tiny", tiny / "results" / "tiny"
    assert sorted(p.name for p in (a / "tables").iterdir()) == sorted(
        p.name for p in (r / "tables").iterdir()
    )
    assert sorted(p.name for p in (a / "figures").iterdir()) == sorted(
        p.name for p in (r / "figures").iterdir()
    )
    assert (a / "paper.pdf").read_bytes() == (r / "paper" / "paper.pdf").read_bytes()
    stamp = json.loads((a / "stamp.json").read_text())
    assert stamp["commit"] == commit and stamp["dirty"] is False, stamp["changed"]
    archived_config = yaml.safe_load((a / "config.yaml").read_text())
    assert archived_config == {
        k: v
        for k, v in grid.with_defaults(TINY, SCHEMA).items()
        if k not in ("source", "archive_paper", "allow_config_change")
    }
    assert stamp["config_hash"] == tables.config_hash(archived_config)
    assert stamp["device"] == "cpu" and stamp["device_source"] == "runs"
    assert set(stamp["versions"]) == {"python", "torch", "snakemake", "pandas", "pyarrow", "numpy"}
    assert all(stamp["versions"].values()) and stamp["date"]
    assert commit in (a / "README.md").read_text()
    # Every file but the stamp is hashed in it, and verifies.
    assert set(stamp["files"]) == {
        p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file() and p != a / "stamp.json"
    }
    assert archive.verify_archive(a) == stamp


def test_rebuilding_from_the_archive_plans_no_training_or_table_job(archived):
    _, fresh, _ = archived
    proc = smk(fresh, "-n", "--config", "source=archive")
    plan = planned(proc)
    assert set(plan) == REBUILT and not set(plan) & TRAINING_OR_TABLES
    assert (
        "differs from" not in proc.stdout + proc.stderr
    )  # the archived config is the one it was measured with
    assert not (fresh / "results").exists()


def test_the_paper_rebuilt_from_the_archive_quotes_the_same_numbers(archived):
    tiny, fresh, _ = archived
    smk(fresh, "--config", "source=archive")
    r = fresh / "results" / "tiny"
    assert (r / "paper" / "paper.pdf").stat().st_size > 10000
    assert sorted(p.name for p in r.iterdir()) == [
        "figures",
        "logs",
        "paper",
    ]  # no runs/, tables/, benchmarks/
    for tex in ("numbers", "claims", "comparison", "cbs", "sharpness", "noise"):
        original = (tiny / "results" / "tiny" / "paper" / "generated" / f"{tex}.tex").read_text()
        assert (r / "paper" / "generated" / f"{tex}.tex").read_text() == original, tex
    assert planned(smk(fresh, "-n", "--config", "source=archive")) == {}


def test_the_rerun_check_against_its_own_archive_finds_nothing_changed(archived):
    tiny, _, _ = archived
    assert planned(smk(tiny, "-n", "--", "compare")) == {"compare": 1}  # nothing retrained
    smk(tiny, "--", "compare")
    text = (tiny / "results" / "tiny" / "compare.md").read_text()
    n = len(tables.read_table(tiny / "results" / "tiny" / "tables" / "claims.parquet", "claims"))
    assert f"Verdicts: 0 of the {n} ledger rows in both builds changed" in text
    assert "Outside the archived interval: 0; archived value outside the new interval: 0" in text
    assert "## b*: 0 of" in text and "Rows only in the archive: none." in text
    assert re.search(r"mean test accuracy: 0 of \d+ cells moved", text)


def committed_archive(dest: Path) -> Path:
    """A copy of the workflow with the committed archive/default/, as a fresh clone has it,
    and the archive's config as config/test.yaml."""
    work = copy_workflow(dest)
    shutil.copytree(ROOT / "archive" / "default", work / "archive" / "default")
    shutil.copy(work / "archive" / "default" / "config.yaml", work / "config" / "test.yaml")
    return work


def test_the_committed_archive_verifies_and_plans_its_rebuild(tmp_path):
    work = committed_archive(tmp_path)
    assert set(planned(smk(work, "-n", "--config", "source=archive"))) == REBUILT


def test_a_tampered_archive_is_refused_naming_the_file_before_any_job(tmp_path):
    work = committed_archive(tmp_path)
    path = work / "archive" / "default" / "tables" / "critical_batch_size.parquet"
    crit = tables.read_table(path, "critical_batch_size")
    crit.loc[crit.optimizer == "sgd", "critical_batch_size"] = 128.0  # the schema is kept
    tables.write_table(crit, path, "critical_batch_size")
    proc = smk(work, "--config", "source=archive", check=False)  # not a dry run
    assert proc.returncode != 0
    assert (
        "archive/default/tables/critical_batch_size.parquet: differs from its stamped SHA-256"
        in proc.stdout + proc.stderr
    )
    assert not (work / "results").exists()


def test_a_truncated_stamp_is_refused_naming_the_file(tmp_path):
    work = committed_archive(tmp_path)
    stamp = work / "archive" / "default" / "stamp.json"
    stamp.write_text(stamp.read_text()[:200])
    proc = smk(work, "-n", "--config", "source=archive", check=False)
    assert proc.returncode != 0
    assert (
        "archive/default/stamp.json: not a readable stamp (JSONDecodeError"
        in proc.stdout + proc.stderr
    )


def test_a_rebuild_with_another_config_is_refused_unless_allowed(tmp_path):
    work = committed_archive(tmp_path)
    proc = smk(work, "-n", "--config", "source=archive", "k2_statistic=mean", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "k2_statistic: sup → mean" in out and "allow_config_change=True" in out
    args = ["source=archive", "k2_statistic=mean", "allow_config_change=True"]
    proc = smk(work, "-n", "--config", *args)
    assert set(planned(proc)) == REBUILT and "k2_statistic: sup → mean" in proc.stdout + proc.stderr


def test_the_fashion_study_plans_the_articles_batch_grid_without_data_or_gpu(tmp_path):
    work = copy_workflow(tmp_path)
    shutil.copy(ROOT / "config" / "fashion.yaml", work / "config" / "test.yaml")
    plan = planned(smk(work, "-n"))
    cfg = grid.with_defaults(yaml.safe_load((ROOT / "config" / "fashion.yaml").read_text()), SCHEMA)
    assert cfg["dataset"] == "fashion_mnist" and cfg["batch_sizes"] == [2**k for k in range(3, 14)]
    assert set(cfg["optimizers"]) == {"sgd", "shb", "nshb"} and len(cfg["sharpness"]["lrs"]) == 4
    # Every training job the projection counts (sgdsmooth.grid) is planned, and nothing is
    # downloaded.
    for protocol in ("cbs", "epochs"):
        jobs = [j for j in grid.training_jobs(cfg) if j.protocol == protocol]
        assert sum(len(j.cells) == 1 for j in jobs) == plan[f"train_{protocol}"]
        for j in jobs:
            if len(j.cells) > 1:  # every cell of a batch size ≤ 512: one population job
                assert (
                    j.batch_size <= 512
                    and plan[f"train_{protocol}_population_b{j.batch_size}"] == 1
                )
    assert plan["sharpness"] == 4 * 11 and plan["paper"] == 1 and "download_cifar100" not in plan
