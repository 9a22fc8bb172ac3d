"""Leaving in time: signals and Slurm's time limit become a checkpoint and an exit."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time


class Interrupted(Exception):
    """Training stopped on a signal after writing its checkpoint; rerun to resume."""


class _StopRequest:
    """Set by SIGTERM, SIGUSR1 (Slurm's warning signal) or SIGINT (Ctrl-C); the loop
    checkpoints and leaves."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self, signum, _frame):
        self.signum = signum

    def at(self, step: int, interrupt_at_step: int | None, deadline: float | None) -> None:
        """Request a stop as a signal would, at a test's step or past a Slurm deadline."""
        if step == interrupt_at_step or (deadline is not None and time.time() >= deadline):
            self.signum = signal.SIGUSR1


@contextlib.contextmanager
def stop_requests():
    """SIGTERM, SIGUSR1 and SIGINT (Ctrl-C, which a terminal sends to snakemake and its jobs
    alike) set the yielded request instead of killing the process. A SIGINT that the process
    was started to ignore (a background job of a script) stays ignored."""
    stop = _StopRequest()
    signals = [signal.SIGTERM, signal.SIGUSR1]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signals.append(signal.SIGINT)
    previous = {s: signal.signal(s, stop) for s in signals} if _main_thread() else {}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def slurm_end_time(job_id: str) -> float | None:
    """The end of a Slurm job's allocation (``squeue -o %e``) as a time.time() value."""
    import datetime
    import subprocess

    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%e"], capture_output=True, text=True, timeout=30
        )
        return datetime.datetime.fromisoformat(out.stdout.strip()).timestamp()
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def slurm_deadline(
    runtime_minutes: float | None, margin: float = 0.25, env=os.environ, end_time=slurm_end_time
) -> float | None:
    """Inside a Slurm job: when to checkpoint and leave, ``margin`` of the time limit (at
    least 20 s, at most 10 min) before the allocation ends. Outside Slurm: None.

    The end is asked of Slurm, so that an attempt retried inside the same allocation still
    leaves in time; if Slurm does not say, it is now + the ``runtime`` resource (the
    executor's --time). A deadline, not a warning signal: Slurm's --signal would also reach
    the snakemake process that runs the job, which has no handler and dies before the
    checkpoint is written.
    """
    if "SLURM_JOB_ID" not in env or not runtime_minutes:
        return None
    limit = 60.0 * runtime_minutes
    end = end_time(env["SLURM_JOB_ID"]) or time.time() + limit
    return end - min(max(margin * limit, 20.0), 600.0)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
