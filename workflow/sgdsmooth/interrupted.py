"""What a killed run leaves behind, cleared before the next one (``bin/run`` calls this).

A run killed hard (kill -9, a power loss, a closed terminal; also Ctrl-C at an unlucky
moment) leaves its lock in ``.snakemake/locks/``, and every later run stops with
"Directory cannot be locked" until ``snakemake --unlock``. Unlocking while another
snakemake works in the same folder would let two runs write the same files, so the lock is
removed only when no snakemake process, nor a job script one started, runs in the folder on
this machine. (The files the killed jobs left half-written are marked incomplete: bin/run
passes ``--rerun-incomplete``, which is safe, as a live run's lock stops it first.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def is_snakemake(argv: list[str]) -> bool:
    """Whether a command line runs snakemake (its script, ``python -m snakemake``) or a job
    script that snakemake started (``.snakemake/scripts/…``), which may still write."""
    if not argv:
        return False
    names = [Path(a).name for a in argv]
    if names[0] == "snakemake" or (names[0].startswith("python") and names[1:2] == ["snakemake"]):
        return True
    if any(a == "-m" and b == "snakemake" for a, b in zip(argv, argv[1:])):
        return True
    return any("/.snakemake/scripts/" in a or a.startswith(".snakemake/scripts/") for a in argv)


def snakemake_processes(folder: str | Path, proc: str | Path = "/proc") -> list[int] | None:
    """The processes of this machine that run snakemake (is_snakemake) in ``folder``; None
    where that cannot be told (no /proc: not Linux)."""
    proc, here = Path(proc), Path(folder).resolve()
    if not proc.is_dir():
        return None
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if Path(os.readlink(entry / "cwd")).resolve() != here:
                continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone meanwhile, or another user's
            continue
        if is_snakemake([a for a in argv if a]):
            found.append(int(entry.name))
    return sorted(found)


def unlock_stale(folder: str | Path = ".", proc: str | Path = "/proc") -> str | None:
    """Remove a lock that a killed run left in ``folder`` (``snakemake --unlock``) when no
    snakemake runs there; return what was done, in words (None: there was no lock)."""
    folder = Path(folder)
    locks = folder / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return None
    running = snakemake_processes(folder, proc)
    if running is None:
        return (
            f"{locks} holds a lock, and whether a snakemake runs here cannot be told on this "
            "system: if none does, remove it with `snakemake --unlock` and run again"
        )
    if running:
        return (
            f"{locks} holds a lock and snakemake runs here (pid {', '.join(map(str, running))}):"
            " left as it is"
        )
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--unlock", "--cores", "1"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return f"`snakemake --unlock` failed ({done.stderr.strip()[-500:]}): the lock is left"
    return f"removed the lock a killed run left in {locks} (no snakemake runs here)"


if __name__ == "__main__":
    said = unlock_stale(sys.argv[1] if len(sys.argv) > 1 else ".")
    if said:
        print(f"run: {said}", file=sys.stderr)
