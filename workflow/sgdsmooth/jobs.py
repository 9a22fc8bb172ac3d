"""What a training job's process needs around the training itself: it stops when the
process that runs it dies, and its log keeps every attempt.

Both serve ``workflow/scripts/train_runs.py``. Snakemake runs that script as
``bash -c 'set -euo pipefail; python …/train_runs.py'`` (bash execs the python), from the
snakemake process that runs the job: the main one on a workstation, the job's own
``python -m snakemake`` inside a Slurm job. This module imports nothing heavy, so the script
can use it before torch starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("sgdsmooth.jobs")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
HEADER = "==== attempt"  # opens each attempt in a job's log


# -- stopping with the parent ------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int, str] | None:
    """A process's state, parent and start time (/proc/<pid>/stat); None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (command name) "
    return fields[0], int(fields[1]), fields[19]


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def is_snakemake(argv: list[str]) -> bool:
    """``snakemake …``, ``python …/bin/snakemake …`` or ``python -m snakemake …``."""
    return any(Path(a).name == "snakemake" for a in argv[:4])


def _runners(pid: int) -> list[tuple[int, str]]:
    """``pid`` and its ancestors up to the nearest snakemake process, as (pid, start time);
    [] when no snakemake process is among them (the trainer was started some other way)."""
    chain = []
    while pid > 1:
        stat = _stat(pid)
        if stat is None:
            return []
        chain.append((pid, stat[2]))
        if is_snakemake(_argv(pid)):
            return chain
        pid = stat[1]
    return []


def _alive(pid: int, start: str) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZX" and stat[2] == start


def _watch(processes: list[tuple[int, str]], sig: int, interval: float) -> None:
    while True:
        for pid, start in processes:
            if not _alive(pid, start):
                log.warning("process %d, which runs this job, has ended: stopping", pid)
                os.kill(os.getpid(), sig)
                return
        time.sleep(interval)


def stop_with_parent(sig: int = signal.SIGTERM, interval: float = 1.0) -> list[int]:
    """Send ``sig`` to this process when the process that started it, or the snakemake
    process above that one, ends; returns the pids watched. SIGTERM makes a training run
    checkpoint and leave (``training.signals.stop_requests``); before training, it ends the process.

    Without this a trainer outlives a killed snakemake and keeps writing into a run folder
    that nobody waits for. Two mechanisms. The kernel signals the trainer when its parent
    goes (``prctl(PR_SET_PDEATHSIG)``; precisely, when the parent *thread* that forked it
    exits). For ``script:`` that parent is snakemake itself: bash execs the script, and the
    forking thread is the one that waits for the job. But where a shell stays in between (a
    conda activation, a wrapper) it lives on when snakemake is killed, since it waits for the
    trainer; so a daemon thread also looks every ``interval`` seconds at each process from
    the parent up to the nearest snakemake, inclusive (by start time, so that a reused pid
    does not count as alive). A parent that dies between ``os.getppid()`` and the prctl call
    is caught by asking again; one that died before this function ran (the trainer then
    belongs to init already) is not. Linux only: elsewhere nothing is watched.
    """
    if not sys.platform.startswith("linux"):
        return []
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    armed = libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    if not armed:
        log.warning("prctl(PR_SET_PDEATHSIG): %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:  # the parent is gone already, and the kernel will not say so
        os.kill(os.getpid(), sig)
        return []
    watched = _runners(parent)
    stat = _stat(parent)
    if not watched and stat is not None:
        watched = [(parent, stat[2])]
    if armed:  # the kernel watches the parent; one signal, not two
        watched = [(pid, start) for pid, start in watched if pid != parent]
    if watched:
        threading.Thread(
            target=_watch, args=(watched, sig, interval), name="parent-watch", daemon=True
        ).start()
    return ([parent] if armed else []) + [pid for pid, _ in watched]


# -- the job's log -----------------------------------------------------------------------
@contextlib.contextmanager
def job_log(path: str | os.PathLike, fmt: str = "%(asctime)s %(message)s"):
    """Log (the root logger, INFO) into the job's log file ``path``, the rule's ``log:``,
    keeping the attempts before this one; yields this attempt's number.

    Snakemake deletes a job's log before each attempt. So the log is written twice: to
    ``path`` and to a hidden copy beside it, ``.<name>.attempts``, which Snakemake does not
    know about. An attempt starts ``path`` from that copy and adds its header, "==== attempt
    N …": a job's log holds every attempt since the job last succeeded (retries, a Slurm
    resubmission, a snakemake run that was killed), each followed by the error or signal that
    stopped it (a kill -9 leaves none). The copy is removed when the attempt succeeds, so
    that a job run again later starts a new log.
    """
    path = Path(path)
    keep = path.with_name(f".{path.name}.attempts")
    earlier = keep.read_text() if keep.exists() else ""
    attempt = earlier.count(f"{HEADER} ") + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(earlier)
    root = logging.getLogger()
    handlers = [logging.FileHandler(p, mode="a") for p in (path, keep)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(fmt))
        root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    log.info(
        "%s %d of this job (pid %d on %s) ====",
        HEADER,
        attempt,
        os.getpid(),
        socket.gethostname(),
    )
    try:
        yield attempt
    except BaseException as err:
        # training.Interrupted (a signal, the Slurm deadline) is an expected end: no
        # traceback. (Not imported: this module comes before torch.)
        interrupted = getattr(sys.modules.get("sgdsmooth.training.signals"), "Interrupted", ())
        if isinstance(err, interrupted):
            log.warning("attempt %d stopped: %s", attempt, err)
        else:
            log.exception("attempt %d failed", attempt)
        raise
    else:
        keep.unlink(missing_ok=True)
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
