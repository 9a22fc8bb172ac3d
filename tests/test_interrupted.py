"""After a run killed mid-job (kill -9 during the paper's latexmk), the next bin/run picks
up by itself: the lock it left is removed, but never while a snakemake still works in the
folder, and the files it left half-written are rebuilt."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_workflow import SNAKEMAKE, committed_archive

from sgdsmooth import interrupted

ROOT_ARGS = ["--cores", "2", "--configfile", "config/test.yaml", "--config", "source=archive"]


@pytest.mark.parametrize(
    "argv, running",
    [
        (["/venv/bin/python", "/venv/bin/snakemake", "--cores", "2"], True),
        (["snakemake", "-n"], True),
        (["python3", "-m", "snakemake", "--unlock"], True),
        (["/venv/bin/python", "/w/.snakemake/scripts/tmpab12.paper_build.py"], True),
        (["python", ".snakemake/scripts/tmpab12.figure.py"], True),
        (["bash", "/home/me/snakemake-work/bin/run"], False),
        (["vim", "Snakefile"], False),
        ([], False),
    ],
)
def test_what_counts_as_a_snakemake_at_work(argv, running):
    assert interrupted.is_snakemake(argv) is running


def fake_proc(tmp_path, folder, processes):
    """A /proc with these {pid: argv}, each working in ``folder``."""
    proc = tmp_path / "proc"
    for pid, argv in processes.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cwd").symlink_to(folder)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "self").mkdir(parents=True, exist_ok=True)
    return proc


def test_a_lock_is_left_while_a_snakemake_works_in_the_folder(tmp_path):
    work = tmp_path / "work"
    (work / ".snakemake" / "locks").mkdir(parents=True)
    (work / ".snakemake" / "locks" / "0.output.lock").write_text("results/x\n")
    proc = fake_proc(tmp_path, work, {4242: ["python", "-m", "snakemake"], 7: ["vim"]})
    said = interrupted.unlock_stale(work, proc)
    assert "snakemake runs here (pid 4242): left as it is" in said
    assert (work / ".snakemake" / "locks" / "0.output.lock").exists()
    said = interrupted.unlock_stale(work, tmp_path / "no-proc")  # not Linux: cannot tell
    assert "`snakemake --unlock`" in said and (work / ".snakemake" / "locks").exists()
    assert interrupted.unlock_stale(tmp_path) is None  # no lock: nothing to say


def test_after_kill_9_during_latexmk_the_next_run_picks_up_by_itself(tmp_path):
    work = committed_archive(tmp_path)
    first = subprocess.Popen(
        [*SNAKEMAKE, *ROOT_ARGS], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    incomplete = work / ".snakemake" / "incomplete"
    deadline = time.time() + 300
    while not (work / "results" / "default" / "paper" / "build").exists():  # latexmk's
        assert first.poll() is None and time.time() < deadline, "the paper was not reached"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert any(incomplete.iterdir()) and any((work / ".snakemake" / "locks").iterdir())
    # Without bin/run's steps, snakemake stops: half-written files, then the lock.
    again = subprocess.run([*SNAKEMAKE, *ROOT_ARGS], cwd=work, capture_output=True, text=True)
    assert again.returncode != 0 and "IncompleteFilesException" in again.stdout + again.stderr
    # The killed run's job script may outlive it a while; its lock stays until it is done.
    while interrupted.snakemake_processes(work):
        assert time.time() < deadline
        time.sleep(0.2)
    # bin/run's two steps: the stale lock removed, then --rerun-incomplete.
    said = subprocess.run(
        [sys.executable, "-m", "sgdsmooth.interrupted"], cwd=work, capture_output=True, text=True
    )
    assert "removed the lock a killed run left" in said.stderr
    done = subprocess.run(
        [*SNAKEMAKE, *ROOT_ARGS, "--rerun-incomplete"], cwd=work, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (work / "results" / "default" / "paper" / "paper.pdf").stat().st_size > 10000
    assert not any(incomplete.iterdir())


def test_bin_run_unlocks_stale_locks_and_reruns_incomplete_files():
    text = (Path(__file__).parents[1] / "bin" / "run").read_text()
    assert "\npython -m sgdsmooth.interrupted\n" in text
    assert "--rerun-incomplete" in text.splitlines()[-1]
