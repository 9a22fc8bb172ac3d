"""One GPU per training job on a multi-GPU workstation.

``snakemake --resources gpu=K`` lets at most K GPU jobs run at once but tells none of them
which GPU to use. Each job therefore claims a free slot 0…K−1 by taking an exclusive
``flock`` on ``<lock_dir>/gpu<i>.lock`` and sets ``CUDA_VISIBLE_DEVICES`` to it before CUDA
starts. The lock lives as long as the process, so a crashed job frees its slot. Under Slurm
(or whenever CUDA_VISIBLE_DEVICES is already set) the scheduler has chosen: nothing to do.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

_held: list = []  # open lock files: closing one would release its slot


def claim_gpu(
    n_devices: int, lock_dir: str | os.PathLike, timeout: float = 600.0, env=os.environ
) -> int | None:
    """Claim a free GPU slot and export it; None when there is nothing to assign."""
    if n_devices < 1 or "CUDA_VISIBLE_DEVICES" in env:
        return None
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for i in range(n_devices):
            fh = open(lock_dir / f"gpu{i}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            _held.append(fh)
            env["CUDA_VISIBLE_DEVICES"] = str(i)
            return i
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no free GPU slot among {n_devices} in {lock_dir} after {timeout:.0f} s"
            )
        time.sleep(0.2)


def count_gpus() -> int:
    """GPUs on this machine, counted by nvidia-smi: asking torch would start CUDA before
    CUDA_VISIBLE_DEVICES is set, and the setting would then be ignored."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return (
        sum(line.startswith("GPU ") for line in out.stdout.splitlines())
        if out.returncode == 0
        else 0
    )
