"""The pipeline on a real Slurm cluster (the single-node one .ci/slurm-up starts).

Skipped where no cluster answers, unless REQUIRE_SLURM=1 (CI), where that is a failure.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import ROOT, TINY, copy_workflow

from sgdsmooth import tables
from sgdsmooth.config import RunConfig
from sgdsmooth.training import train

# One optimizer: b = 128 is a population job (TINY's train block) and b = 256 trains one run
# after another, so both kinds of training job meet Slurm; more optimizers would add jobs of
# the same kind, and minutes to CI.
SMALL = TINY | {
    "experiment": "slurm",
    "optimizers": {"sgd": 0.0},
    "sharpness": {"lrs": [0.1], "batch_sizes": [256], "n_examples": 256, "iterations": 3},
}


def cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return out.returncode == 0 and any(state in out.stdout for state in ("idle", "mix", "alloc"))


pytestmark = pytest.mark.skipif(
    not cluster_up() and os.environ.get("REQUIRE_SLURM") != "1",
    reason="no Slurm cluster (start one with .ci/slurm-up)",
)


def env():
    e = dict(os.environ)
    e["PATH"] = (
        f"{Path(sys.executable).parent}:{e['PATH']}"  # jobs inherit the project's environment
    )
    return e


def on_slurm(
    work: Path, config: dict, *targets, extra=(), timeout=900
) -> subprocess.CompletedProcess:
    (work / "config" / "test.yaml").write_text(yaml.safe_dump(config))
    # Targets first: --configfile and --set-resources take several values and would swallow them.
    cmd = [
        "timeout",
        "-s",
        "KILL",
        str(timeout),
        sys.executable,
        "-m",
        "snakemake",
        *targets,
        "--profile",
        str(ROOT / ".ci" / "slurm"),
        "--configfile",
        "config/test.yaml",
        *extra,
    ]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env())
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def fresh(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return copy_workflow(folder)


def slurm_states(proc) -> dict[str, str]:
    ids = set(re.findall(r"SLURM jobid (\d+)", proc.stdout + proc.stderr))
    assert ids, "no job was submitted to Slurm"
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(sorted(ids))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.splitlines() if line)  # "CANCELLED by 0"


def test_every_job_runs_as_a_slurm_job_and_matches_a_local_run(tmp_path):
    if os.environ.get("REQUIRE_SLURM") == "1":
        assert cluster_up(), "REQUIRE_SLURM=1 but no Slurm cluster answers"
    remote = fresh(tmp_path, "slurm")
    proc = on_slurm(remote, SMALL)
    states = slurm_states(proc)
    # 1 optimizer × 2 batch sizes × 2 protocols + 1 sharpness cell, each its own Slurm job.
    assert len(states) == 1 * 2 * 2 + 1
    assert set(states.values()) == {"COMPLETED"}, states

    local = fresh(tmp_path, "local")
    (local / "config" / "test.yaml").write_text(yaml.safe_dump(SMALL))
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/test.yaml"],
        cwd=local,
        check=True,
        capture_output=True,
        env=env(),
    )
    for name in ("cbs_runs", "critical_batch_size", "accuracy", "sharpness"):
        a = tables.read_table(remote / "results/slurm/tables" / f"{name}.parquet", name)
        b = tables.read_table(local / "results/slurm/tables" / f"{name}.parquet", name)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert (remote / "results/slurm/paper/paper.pdf").exists()


def epochs_lasting(seconds: float, folder: Path) -> int:
    """Epochs of the time-limit test's run (SGD, b = 8, digits) that train for about ``seconds``
    on this machine, timed on epochs 2–4: machines differ about threefold, and the test needs a
    run that one job cannot finish and three attempts (Snakemake's retries) can."""
    cfg = RunConfig(
        protocol="epochs", optimizer="sgd", lr=0.1, batch_size=8, epochs=4, device="cpu"
    )
    train(cfg, folder)
    wall = tables.read_table(
        folder / "metrics.parquet", "epochs"
    ).wall_time  # cumulative, per epoch
    return max(
        20, round(seconds / ((wall.iloc[-1] - wall.iloc[0]) / 3))
    )  # the first epoch warms up


def one_long_run(experiment: str, epochs: int) -> tuple[dict, str]:
    """A config of one SGD run at b = 8 for ``epochs`` epochs, and the path of its table."""
    cfg = TINY | {
        "experiment": experiment,
        "optimizers": {"sgd": 0.0},
        "batch_sizes": [8],
        "accuracy": {"epochs": epochs, "seeds": [0]},
        "sharpness": {"lrs": []},
        "train": {},  # a job of its own cell (rule train_epochs), not a population job
    }
    return cfg, f"results/{experiment}/runs/epochs/sgd/lr0.1/beta0/b8/seed0/metrics.parquet"


def assert_same_as_uninterrupted(table: Path, folder: Path) -> None:
    """The run's table equals that of the same run trained in one go in ``folder``."""
    train(RunConfig.from_dict(tables.read_metadata(table)["config"]), folder)
    a = tables.read_table(table, "epochs").drop(columns="wall_time")
    b = tables.read_table(folder / "metrics.parquet", "epochs").drop(columns="wall_time")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_a_run_longer_than_its_time_limit_resumes_to_the_same_table(tmp_path):
    """A 1-minute Slurm limit on a run of about 55 s of training (a job trains ~35 s of it):
    it checkpoints before the limit, the job fails, Snakemake resubmits it, and the new job
    resumes from the checkpoint."""
    work = copy_workflow(tmp_path)
    long, target = one_long_run("limit", epochs_lasting(55, tmp_path / "timing"))
    proc = on_slurm(work, long, target, extra=["--set-resources", "train_epochs:runtime=1"])
    states = list(slurm_states(proc).values())  # in job-id order
    assert (
        len(states) >= 2 and states[-1] == "COMPLETED" and set(states[:-1]) <= {"FAILED", "TIMEOUT"}
    ), states
    log = (work / "results/limit/logs/train_epochs/sgd/lr0.1/beta0/b8.log").read_text()
    assert "resumed from" in log
    assert_same_as_uninterrupted(work / target, tmp_path / "uninterrupted")


def test_a_scancelled_job_checkpoints_and_is_resumed_without_help(tmp_path):
    """scancel of a running training job: the run checkpoints on SIGTERM, Slurm reports the job
    CANCELLED, and Snakemake resubmits it (the profile's retries); the new job resumes from the
    checkpoint and the workflow finishes by itself with the table of an uninterrupted run."""
    work = copy_workflow(tmp_path)
    cfg, target = one_long_run("cancel", epochs_lasting(20, tmp_path / "timing"))
    (work / "config" / "test.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = work / Path(target).parent
    cmd = [sys.executable, "-m", "snakemake", target, "--profile", str(ROOT / ".ci" / "slurm")]
    cmd += ["--configfile", "config/test.yaml"]
    proc = subprocess.Popen(
        cmd, cwd=work, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # Cancel the job once its run has written a checkpoint (it trains a few epochs first).
        deadline = time.monotonic() + 240
        while not (run_dir / "checkpoint.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.5)
        running = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True
        ).stdout.split()
        assert len(running) == 1, running
        subprocess.run(["scancel", running[0]], check=True)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    states = slurm_states(subprocess.CompletedProcess(cmd, 0, out, ""))
    assert states[running[0]].startswith("CANCELLED"), states
    assert list(states.values())[-1] == "COMPLETED", states
    log = (work / "results/cancel/logs/train_epochs/sgd/lr0.1/beta0/b8.log").read_text()
    assert "resumed from" in log
    assert_same_as_uninterrupted(work / target, tmp_path / "uninterrupted")
