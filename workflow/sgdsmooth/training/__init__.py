"""Training: one loop for one run or a population of many (``loop``), the population's
stacked network and step (``stacked``, ``population``), a run's state and stopping rule
(``run``), done-states (``done``), signals and Slurm deadlines (``signals``), the device and
determinism (``device``), and the command line (``python -m sgdsmooth.training``).

A run writes into its own folder:

    metrics.parquet   per-epoch table ("epochs" or "cbs_epochs" schema) with the run's
                      config, status and summary in the file metadata
    noise.parquet     the noise measurements (fixed-epoch runs with noise epochs)
    final.pt          final weights (fixed-epoch runs; written also for a diverged run)
    checkpoint.pt     resumable state while the run is in progress (removed at the end); one
                      that cannot be read is set aside as checkpoint.pt.corrupt-<time>
    .done/            the finished run's files again (hard links) and a manifest: what a
                      failed job's next attempt restores instead of retraining

On CPU a run is bitwise reproducible, and resumes bitwise, at the same number of CPU threads
(torch's kernels split their sums by thread); the workflow sets it (``train.threads``), a
checkpoint records it, and a resume at another count says so in the log.
"""

from .device import pick_device
from .done import keep_done, restore_done, run_files
from .loop import open_run, train, train_cells, train_many, train_runs
from .signals import Interrupted, slurm_deadline

__all__ = [
    "Interrupted",
    "keep_done",
    "open_run",
    "pick_device",
    "restore_done",
    "run_files",
    "slurm_deadline",
    "train",
    "train_cells",
    "train_many",
    "train_runs",
]
