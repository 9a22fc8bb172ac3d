"""A training job's process (sgdsmooth.jobs, workflow/scripts/train_runs.py) under a real
snakemake: it stops when snakemake dies, its log keeps every attempt, and the command line's
--retries decides how many attempts there are."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_workflow import ROOT, TINY, copy_workflow

from sgdsmooth import jobs

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc")


def attempts(log: Path) -> list[int]:
    return [int(n) for n in re.findall(r"==== attempt (\d+) ", log.read_text())]


def descendants(pid: int) -> list[int]:
    """Processes below ``pid``, found through /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            p = int(entry.name)
            while (stat := jobs._stat(p)) is not None and p > 1:
                if stat[1] == pid:
                    found.append(int(entry.name))
                    break
                p = stat[1]
    return found


def is_trainer(argv: list[str]) -> bool:
    command = " ".join(argv)
    return (
        bool(argv)
        and Path(argv[0]).name.startswith("python")
        and ("train_runs.py" in command or "sgdsmooth.training" in command)
    )


def gone(pid: int) -> bool:
    stat = jobs._stat(pid)
    return stat is None or stat[0] in "ZX"


# A run that would train for hours, with an epoch (and a checkpoint) about every second.
RUN = dict(protocol="epochs", optimizer="sgd", batch_size=2, epochs=10_000, data_subset=200)
RULES = {
    # What the workflow does: the training script, which Snakemake starts with
    # `bash -c 'set -euo pipefail; python script'`; bash (5.1 on) execs the last command,
    # so the trainer's parent is the snakemake process itself (the thread that waits for it).
    "script": f"""
    params:
        runs=[{RUN!r}],
        seeds=[0],
        together=False,
    script:
        "{ROOT / "workflow" / "scripts" / "train_runs.py"}"
""",
    # A shell that stays between snakemake and the trainer (a conda activation, a wrapper),
    # and outlives a killed snakemake since it waits for the trainer.
    "shell": """
    shell:
        "python -c 'import sys; from sgdsmooth.jobs import stop_with_parent; "
        "from sgdsmooth.training.cli import main; stop_with_parent(); main(sys.argv[1:])' "
        "--config run.yaml --out runs/seed0 2> {log}; true"
""",
}


@linux
@pytest.mark.parametrize(
    "rule, killed",
    [("script", "snakemake"), ("shell", "snakemake"), ("shell", "the shell")],
)
def test_a_trainer_checkpoints_and_stops_when_what_runs_it_is_killed(tmp_path, rule, killed):
    """kill -9 of snakemake, or of a shell between it and the trainer: the trainer notices
    (the kernel's parent-death signal, or its watch on the processes up to snakemake), writes
    its checkpoint and exits within seconds, instead of training on into a folder that
    nobody waits for."""
    (tmp_path / "Snakefile").write_text(
        f"""
rule train:
    output:
        "runs/seed0/metrics.parquet",
    log:
        "train.log",
    threads: 1
{RULES[rule]}"""
    )
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(RUN))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    smk_proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trainer = None
    checkpoint = tmp_path / "runs" / "seed0" / "checkpoint.pt"
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists():  # training is under way
            assert smk_proc.poll() is None and time.monotonic() < deadline, "no training"
            time.sleep(0.1)
        (trainer,) = [p for p in descendants(smk_proc.pid) if is_trainer(jobs._argv(p))]
        parent = jobs._stat(trainer)[1]
        if rule == "shell":
            assert parent != smk_proc.pid  # a shell in between, which outlives snakemake
        os.kill(smk_proc.pid if killed == "snakemake" else parent, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while not gone(trainer):
            assert time.monotonic() < deadline, f"the trainer outlived {killed}"
            time.sleep(0.1)
    finally:
        for pid in (trainer, smk_proc.pid):
            if pid is not None and not gone(pid):
                os.kill(pid, signal.SIGKILL)
        smk_proc.wait(timeout=60)
    log = (tmp_path / "train.log").read_text()
    assert re.search(r"signal 15 at step \d+: 1 checkpoint\(s\) written", log), log
    if rule == "script":
        assert re.search(r"attempt 1 stopped: signal 15", log), log
    assert checkpoint.exists() and not (tmp_path / "runs" / "seed0" / "metrics.parquet").exists()
    written = checkpoint.stat().st_mtime_ns
    time.sleep(2)
    assert checkpoint.stat().st_mtime_ns == written  # nothing writes any more


@linux
def test_a_parent_that_dies_before_the_kernel_is_asked_still_stops_the_process():
    """The race: the parent ends between getppid() and prctl(), so the kernel will never
    signal; stop_with_parent sees the parent change and stops the process itself."""
    code = (
        "import os, time\n"
        "from sgdsmooth import jobs\n"
        "seen = iter([os.getppid(), 1])\n"  # the parent, then init: it died in between
        "os.getppid = lambda: next(seen)\n"
        "jobs.stop_with_parent()\n"
        "time.sleep(30)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == -signal.SIGTERM


def test_jobs_log_keeps_every_attempt_and_starts_afresh_after_a_success(tmp_path):
    import logging

    log = tmp_path / "logs" / "job.log"
    for n in (1, 2):
        with pytest.raises(RuntimeError), jobs.job_log(log) as attempt:
            assert attempt == n
            logging.getLogger("sgdsmooth.training").info("training, attempt %d", n)
            raise RuntimeError(f"boom {n}")
        log.unlink()  # as Snakemake does before the next attempt
    with jobs.job_log(log) as attempt:
        logging.getLogger("sgdsmooth.training").info("done")
    text = log.read_text()
    assert attempts(log) == [1, 2, 3] and attempt == 3
    for n in (1, 2):
        assert f"training, attempt {n}" in text and f"RuntimeError: boom {n}" in text
    assert (
        text.index("boom 1") < text.index("attempt 2 ") < text.index("boom 2") < text.index("done")
    )
    assert not (tmp_path / "logs" / ".job.log.attempts").exists()  # the job succeeded
    log.unlink()
    with jobs.job_log(log):
        pass
    assert attempts(log) == [1]


def test_the_command_lines_retries_decide_and_the_log_keeps_every_attempt(tmp_path):
    """The real training rule, made to fail (CIFAR-100 files that are not pickles; a GPU
    that is not there is refused before any job): with --retries 0 it runs once, not three
    times (no rule sets its own retries); a later snakemake with --retries 1 runs it twice
    more, and the job's log holds all three attempts."""
    work = copy_workflow(tmp_path)
    cfg = TINY | {
        "experiment": "retry",
        "dataset": "cifar100",
        "data_root": "broken",
        "optimizers": {"sgd": 0.0},
        "batch_sizes": [256],
        "sharpness": {"lrs": []},
    }
    for name in ("train", "test", "meta"):
        path = work / "broken" / "cifar100" / "cifar-100-python" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not a pickle")
    target = "results/retry/runs/epochs/sgd/lr0.1/beta0/b256/seed0/metrics.parquet"
    log = work / "results/retry/logs/train_epochs/sgd/lr0.1/beta0/b256.log"
    (work / "config" / "test.yaml").write_text(yaml.safe_dump(cfg))

    def snakemake(*args):  # the target first: --configfile would take it as a second file
        cmd = [sys.executable, "-m", "snakemake", target, "--cores", "1", *args]
        cmd += ["--configfile", "config/test.yaml"]
        return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)

    once = snakemake("--retries", "0")
    assert once.returncode != 0 and log.exists(), once.stderr[-3000:]
    assert attempts(log) == [1], log.read_text()
    assert snakemake("--retries", "1").returncode != 0
    text = log.read_text()
    assert attempts(log) == [1, 2, 3], text
    assert [int(n) for n in re.findall(r"attempt (\d+) failed", text)] == [1, 2, 3], text


def test_retries_come_from_the_command_line_and_profiles_not_the_rules():
    """A rule's `retries:` overrides the command line's --retries; none is set. bin/run's
    default comes before the user's arguments (argparse: the last one wins), and the Slurm
    profiles retry (a job at its time limit or preempted resumes from its checkpoint)."""
    rules = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    for path in rules:
        assert not re.search(r"^\s*retries\s*:", path.read_text(), re.M), path
    assert re.search(r'^exec snakemake .*--retries 2 "\$@"$', (ROOT / "bin/run").read_text(), re.M)
    for profile in ("slurm/profile.yaml", ".ci/slurm/profile.yaml"):
        assert yaml.safe_load((ROOT / profile).read_text())["retries"] >= 2, profile


@linux
def test_a_killed_job_keeps_its_finished_seed_through_snakemakes_retry(tmp_path):
    """#17 item 2 end to end, under a real snakemake with --retries 1: the trainer of a
    two-seed cell is killed (-9) while it trains seed 1, after seed 0 finished. Snakemake
    deletes the failed job's outputs, seed 0's among them, and retries; the second attempt
    puts seed 0 back, byte for byte, from its verified done-state instead of retraining it."""
    work = copy_workflow(tmp_path)
    cfg = TINY | {
        "experiment": "kill",
        "optimizers": {"sgd": 0.0},
        "batch_sizes": [256],
        "accuracy": {"epochs": 25, "seeds": [0, 1], "full_grad_epochs": []},
        "noise": {"epochs": []},
        "sharpness": {"lrs": []},
    }
    cell = work / "results/kill/runs/epochs/sgd/lr0.1/beta0/b256"
    log = work / "results/kill/logs/train_epochs/sgd/lr0.1/beta0/b256.log"
    (work / "config" / "test.yaml").write_text(yaml.safe_dump(cfg))
    target = str(cell.relative_to(work) / "seed1" / "metrics.parquet")
    smk_proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", target, "--cores", "1", "--retries", "1"]
        + ["--configfile", "config/test.yaml"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        seed1_began = re.compile(r"finished \S+/seed0: .*\n.*training RunConfig", re.S)
        while not (log.exists() and seed1_began.search(log.read_text())):
            assert smk_proc.poll() is None and time.monotonic() < deadline, "seed 1 never began"
            time.sleep(0.1)
        first = {name: (cell / "seed0" / name).read_bytes() for name in ("metrics.parquet",)}
        (trainer,) = [p for p in descendants(smk_proc.pid) if is_trainer(jobs._argv(p))]
        os.kill(trainer, signal.SIGKILL)
        out, _ = smk_proc.communicate(timeout=600)
    finally:
        if smk_proc.poll() is None:
            smk_proc.kill()
            smk_proc.wait()
    text = log.read_text()
    assert smk_proc.returncode == 0, out[-3000:] + text[-3000:]
    assert attempts(log) == [1, 2], text
    second = text.split("==== attempt 2 ")[1]
    assert re.search(r"restored \S+/seed0 from \S+/seed0/\.done .*not retrained", second), second
    assert "seed=0," not in second and "seed=1," in second  # only seed 1 trained again
    assert (cell / "seed0" / "metrics.parquet").read_bytes() == first["metrics.parquet"]
    for seed in (0, 1):
        assert (cell / f"seed{seed}" / "final.pt").exists()
