"""The training loop: both run protocols, the CBS stopping rule, checkpoints and resume.

One run writes into its own folder:

    metrics.parquet   per-epoch table ("epochs" or "cbs_epochs" schema) with the run's
                      config, status and summary in the file metadata
    final.pt          final weights (fixed-epoch runs; written also for a diverged run)
    checkpoint.pt     resumable state while the run is in progress (removed at the end); one
                      that cannot be read is set aside as checkpoint.pt.corrupt-<time>
    .done/            the finished run's files again (hard links) and a manifest: what a
                      failed job's next attempt restores instead of retraining (keep_done)

Determinism: the model is initialised from ``torch.manual_seed(seed)``; shuffling and
augmentation draw from one generator seeded with ``seed`` that is saved in checkpoints,
so on CPU a resumed run is bitwise the same as an uninterrupted one, at the same number of
CPU threads: torch's kernels split their sums by thread, so 1 and 2 threads round
differently from the first epoch on. Every run sets its count (the workflow: the rule's
``threads``, i.e. ``train.threads``; the command line: ``--threads``, default 1); a
checkpoint records it, and a resume at another count says so in the log.

Stopping rule (CBS protocol, docs/method.md §4): after step t, stop when
(1/t)·Σ_{k≤t} ‖g_k‖ ≤ ε, at least ``min_epochs`` epochs have passed and the run has learned:
some finished epoch had a mean training loss ≤ ``learned_loss`` (when set); ‖g_k‖ is the L2
norm of all parameter gradients of mini-batch k. Why the last condition: a network whose
gradients at initialisation are already small (a small CNN on 60,000 images at b ≥ 512) has
a running mean below ε = 0.5 within a few steps, at chance loss; the rule would then measure
the initialisation, not training. The authors' guard, a minimum of epochs, only delays such a
stop, and it puts an SFO floor of ``min_epochs``·n under every batch size; a loss threshold
says directly what "learned" means. A run whose budget ``max_steps`` runs out first
is *censored*. A non-finite loss ends any run with status ``diverged``.

Command line: ``python -m sgdsmooth.train --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
import yaml

from . import noise
from .config import ConfigError, RunConfig
from .data import ImageData, load_dataset
from .models import Executor, make_model
from .optim import make_optimizer
from .tables import SCHEMAS, code_version, config_hash, read_metadata, write_table

log = logging.getLogger("sgdsmooth.train")

STATUSES = ("ok", "reached", "censored", "diverged")


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


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm of all parameter gradients together, kept on the device (no sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: ImageData, batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy on the whole test set, BatchNorm in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=data.test_x.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.test_x.device)
    for start in range(0, data.test_x.shape[0], batch_size):
        x = data.normalize(data.test_x[start : start + batch_size])
        y = data.test_y[start : start + batch_size]
        out = model(x)
        loss_sum += F.cross_entropy(out, y, reduction="sum").double()
        correct += (out.argmax(1) == y).sum()
    model.train(was_training)
    n = data.test_x.shape[0]
    return float(loss_sum) / n, float(correct) / n


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Run:
    """One training run's complete state, so that a checkpoint can restore all of it."""

    def __init__(
        self, cfg: RunConfig, data: ImageData, device: torch.device, out: Path | None = None
    ):
        self.cfg, self.data, self.device = cfg, data, device
        self.out = out  # the run folder (None: a run that writes nothing, as in benchmarks)
        torch.manual_seed(cfg.seed)
        self.model = make_model(cfg.model, data.num_classes, data.in_channels).to(device)
        self.executor = Executor(cfg.precision, cfg.channels_last, cfg.compile, cfg.cuda_graph)
        self.forward = self.executor.prepare(self.model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(cfg.optimizer, self.params, cfg.lr, cfg.beta)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(cfg.seed)
        self.steps_per_epoch = data.n_train // cfg.batch_size  # drop the last partial batch
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimizer steps
        self.pos = 0  # steps done in the current epoch
        self.perm: torch.Tensor | None = None
        self.trace: dict[str, list[torch.Tensor]] = {"loss": [], "norm": [], "correct": []}
        self.norm_sum = 0.0  # Σ‖g_k‖ over all steps, in float64, for the running mean
        self.rows: list[dict] = []
        self.noise_rows: list[dict] = []
        self.status: str | None = None
        self.stop_step: int | None = None
        self._checked = 0  # trace entries already seen by ``check``
        self.wall = 0.0  # seconds spent in earlier sessions of this run
        self._step = None  # the step as it runs (Executor.capture), made at the first train_step

    # -- checkpoints ---------------------------------------------------------------------
    @property
    def ckpt(self) -> Path:
        return self.out / "checkpoint.pt"

    def state_dict(self) -> dict:
        return {
            "config_hash": config_hash(self.cfg.to_dict()),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "step": self.step,
            "pos": self.pos,
            "perm": self.perm,
            "trace": {k: [t.cpu() for t in v] for k, v in self.trace.items()},
            "norm_sum": self.norm_sum,
            "checked": self._checked,
            "rows": self.rows,
            "wall": self.wall,
            "noise_rows": self.noise_rows,
            "threads": torch.get_num_threads(),  # on CPU the bitwise result depends on it
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        for key in ("epoch", "step", "pos", "norm_sum", "rows", "wall", "noise_rows"):
            setattr(self, key, state[key])
        self._checked = state["checked"]  # norm_sum already holds the norms before this index
        self.perm = None if state["perm"] is None else state["perm"].to(self.device)
        self.trace = {k: [t.to(self.device) for t in v] for k, v in state["trace"].items()}

    # -- one step ------------------------------------------------------------------------
    def train_step(self) -> None:
        x, y = self.next_batch()
        x = self.executor.input(x)
        if self._step is None:
            self._step = self.executor.capture(self.eager_step, (x, y), self.model, self.optimizer)
        self.record_step(*self._step(x, y))

    def eager_step(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward, backward, update; the step's loss, gradient norm and correct count."""
        with self.executor.autocast(self.device):
            out = self.forward(x)
            loss = F.cross_entropy(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = grad_norm(self.params)
        self.optimizer.step()
        return loss.detach(), norm.detach(), (out.argmax(1) == y).sum()

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current step's mini-batch: the next slice of this epoch's shuffle, augmented."""
        b = self.cfg.batch_size
        return self.data.train_batch(self.perm[self.pos * b : (self.pos + 1) * b], self.generator)

    def record_step(self, loss: torch.Tensor, norm: torch.Tensor, correct: torch.Tensor) -> None:
        """Keep one step's loss, gradient norm and correct count (on the device) and advance."""
        self.trace["loss"].append(loss)
        self.trace["norm"].append(norm)
        self.trace["correct"].append(correct)
        self.pos += 1
        self.step += 1

    def check(self) -> None:
        """Look at the steps since the last check: divergence, then the stopping rule."""
        new = slice(self._checked, None)
        losses = torch.stack(self.trace["loss"][new]).cpu()
        if not torch.isfinite(losses).all():
            self.status = "diverged"
            return
        if self.cfg.protocol != "cbs":
            self._checked = len(self.trace["loss"])
            return
        norms = torch.stack(self.trace["norm"][new]).double().cpu()
        first = self.step - len(norms) + 1  # global index t of norms[0]
        sums = self.norm_sum + torch.cumsum(norms, 0)
        t = torch.arange(first, self.step + 1, dtype=torch.float64)
        min_steps = self.cfg.min_epochs * self.steps_per_epoch
        hit = ((sums / t) <= self.cfg.epsilon) & (t >= min_steps)
        if hit.any() and not self.learned():  # asked only when the rule would fire
            hit[:] = False
        if hit.any():
            k = int(hit.nonzero()[0])
            self.stop_step = first + k
            self.status = "reached"
        elif self.step >= self.cfg.max_steps:
            self.stop_step = self.step
            self.status = "censored"
        self.norm_sum = (
            float(sums[-1]) if self.status is None else float(sums[self.stop_step - first])
        )
        self._checked = len(self.trace["norm"])

    def armed_epoch(self) -> int | None:
        """The epoch after which the stopping rule is armed: 0 without ``learned_loss``, else
        the first finished epoch whose mean training loss was at most it, None while there is
        none (read off the rows, so a resumed run agrees)."""
        limit = self.cfg.learned_loss
        if limit is None:
            return 0
        return next(
            (
                row["epoch"]
                for row in self.rows
                if self._complete(row) and row["train_loss"] <= limit
            ),
            None,
        )

    def learned(self) -> bool:
        """Whether the stopping rule is armed."""
        return self.armed_epoch() is not None

    def _complete(self, row: dict) -> bool:
        return row["step"] == row["epoch"] * self.steps_per_epoch

    # -- one epoch's row -----------------------------------------------------------------
    def close_epoch(self, wall: float) -> None:
        n = len(self.trace["loss"])
        if self.stop_step is not None:
            n -= self.step - self.stop_step  # steps past the stopping step do not count
        losses = torch.stack(self.trace["loss"][:n]).double()
        norms = torch.stack(self.trace["norm"][:n]).double()
        step = self.stop_step if self.stop_step is not None else self.step
        row = {
            "epoch": self.epoch + 1,
            "step": step,
            "train_loss": float(losses.mean()),
            "wall_time": wall,
        }
        if self.cfg.protocol == "cbs":
            row |= {
                "grad_norm_mean": float(norms.mean()),
                "grad_norm_min": float(norms.min()),
                "grad_norm_max": float(norms.max()),
                "running_mean": self.norm_sum / max(step, 1),
            }
        else:
            test_loss, test_acc = evaluate(self.model, self.data, self.cfg.eval_batch_size)
            correct = float(torch.stack(self.trace["correct"][:n]).sum())
            full = math.nan
            if self.epoch + 1 in self.cfg.noise_epochs:
                self.noise_rows.append(self.measure_noise())
                full = self.noise_rows[-1]["k2"]  # the same ‖∇F_b(x)‖²: not computed twice
            elif self.epoch + 1 in self.cfg.full_grad_epochs:
                full = noise.full_gradient_norm_sq(
                    self.model,
                    self.data,
                    self.cfg.batch_size,
                    20_000 + self.cfg.seed + 1000 * self.epoch,
                )
            row |= {
                "lr": self.cfg.lr,
                "train_accuracy": correct / (n * self.cfg.batch_size),
                "test_loss": test_loss,
                "test_accuracy": test_acc,
                "grad_norm_mean": float(norms.mean()),
                "full_grad_norm_sq": full,
            }
        self.rows.append(row)
        self.trace = {k: [] for k in self.trace}
        self._checked = 0
        self.epoch += 1
        self.pos = 0
        self.perm = None

    def measure_noise(self) -> dict:
        """One row of the run's noise table at the current point (the run is not disturbed)."""
        c = self.cfg
        start = time.perf_counter()
        values = noise.measure(
            self.model,
            self.optimizer,
            self.data,
            c.lr,
            c.batch_size,
            c.seed + 1000 * self.epoch,
            n_batches=c.noise_batches,
            direction_steps=c.noise_steps,
            per_example=c.noise_per_example,
        )
        beta = 0.0 if c.optimizer == "sgd" else c.beta
        return {
            "optimizer": c.optimizer,
            "lr": c.lr,
            "beta": beta,
            "batch_size": c.batch_size,
            "seed": c.seed,
            "epoch": self.epoch + 1,
            **values,
            "seconds": time.perf_counter() - start,
        }

    def finished(self) -> bool:
        if self.status is not None:
            return True
        return self.cfg.protocol == "epochs" and self.epoch >= self.cfg.epochs

    def summary(self) -> dict:
        steps = self.stop_step if self.stop_step is not None else self.step
        armed = self.armed_epoch() if self.cfg.protocol == "cbs" else None
        complete = [row for row in self.rows if self._complete(row)] or self.rows[-1:]
        return {
            "status": self.status or "ok",
            "steps": steps,
            "sfo": steps * self.cfg.batch_size,
            "epochs": self.epoch,
            "reached": self.status == "reached",
            # the mean training loss of the last complete epoch (of the partial one if the run
            # stopped within its first): what the run had learned; none for a diverged run
            "train_loss": complete[-1]["train_loss"]
            if complete and self.status != "diverged"
            else math.nan,
            # CBS: when the rule was armed (cbs.learned_loss), and whether the run stopped on the
            # first step after it, i.e. the loss threshold rather than ε decided T
            "armed_epoch": armed,
            "gate_bound": bool(
                self.status == "reached" and armed and steps == armed * self.steps_per_epoch + 1
            ),
        }


def open_run(cfg: RunConfig, out_dir: str | os.PathLike, data: ImageData | None = None) -> Run:
    """A run ready to train into ``out_dir``: data on its device, resumed from the folder's
    checkpoint if there is one for this config."""
    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = (
            True  # fixed shapes: time the kernels once, keep the fastest
        )
    if data is None:
        data = load_dataset(cfg.dataset, cfg.data_root, cfg.augment, cfg.data_subset)
    elif cfg.augment is not None:
        data = dataclasses.replace(data, augment=cfg.augment)
    run = Run(cfg, data.to(device), device, out)
    state = _load_checkpoint(run.ckpt, device) if run.ckpt.exists() else None
    if state is not None:
        if state["config_hash"] == config_hash(cfg.to_dict()):
            run.load_state_dict(state)
            log.info("resumed from %s at epoch %d, step %d", run.ckpt, run.epoch, run.step)
            threads = state.get("threads", torch.get_num_threads())
            if device.type == "cpu" and threads != torch.get_num_threads():
                log.warning(
                    "%s was written at %d CPU threads, this session has %d: the resumed run "
                    "rounds differently from an uninterrupted one",
                    run.ckpt,
                    threads,
                    torch.get_num_threads(),
                )
        else:
            log.warning("ignoring %s: it belongs to another config", run.ckpt)
    return run


def _load_checkpoint(path: Path, device: torch.device) -> dict | None:
    """A checkpoint's state; None when it cannot be read (truncated by a full disk or a kill
    outside ``_atomic_save``): it is then set aside as ``checkpoint.pt.corrupt-<time>``, with
    a warning, and the run starts afresh instead of failing every retry."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(state, dict) or "config_hash" not in state:
            raise ValueError("not a checkpoint of sgdsmooth.train")
        return state
    except Exception as err:  # torch raises OSError, RuntimeError, EOFError, pickle errors
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)
        log.warning(
            "cannot read %s (%s: %s): set aside as %s; the run starts afresh",
            path,
            type(err).__name__,
            err,
            aside.name,
        )
        return None


def check_due(run: Run, check_every: int) -> bool:
    """Whether to look at the stopping rule now: every ``check_every`` steps, at the end of
    an epoch and at the step budget."""
    return (
        len(run.trace["loss"]) - run._checked >= check_every
        or run.pos == run.steps_per_epoch
        or run.step >= run.cfg.max_steps
    )


def checks_every(device: torch.device) -> int:
    # Checking the stopping rule needs the norms on the host; on a GPU batch the checks so
    # that the device is not synchronised every step (the stopping step stays exact).
    return 1 if device.type == "cpu" else 25


def save_checkpoint(run: Run) -> None:
    _atomic_save(run.state_dict(), run.ckpt)


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


def finish_run(run: Run) -> dict:
    """Write the run's tables (and final weights), remove its checkpoint; the summary."""
    cfg, out, device = run.cfg, run.out, run.device
    summary = run.summary()
    schema = "cbs_epochs" if cfg.protocol == "cbs" else "epochs"
    frame = pd.DataFrame(run.rows, columns=SCHEMAS[schema].names)
    if cfg.protocol == "epochs":  # also when diverged: the table's status says what they are
        _atomic_save(run.model.state_dict(), out / "final.pt")
    meta = {
        "config": cfg.to_dict(),
        "config_hash": config_hash(cfg.to_dict()),
        "seed": cfg.seed,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "summary": summary,
        # What K² and the noise table are gradients of (sgdsmooth.noise): F_b of this run's b.
        "gradient_function": {
            "bn_mode": noise.BN_MODE,
            "batch_size": cfg.batch_size,
            "augmented": bool(run.data.augment),
            "name": noise.function_name(cfg.batch_size, bool(run.data.augment)),
        },
    }
    if cfg.noise_epochs:
        write_table(
            pd.DataFrame(run.noise_rows, columns=SCHEMAS["noise"].names),
            out / "noise.parquet",
            "noise",
            meta,
        )
    write_table(frame, out / "metrics.parquet", schema, meta)
    keep_done(run.cfg, out, summary)
    run.ckpt.unlink(missing_ok=True)
    log.info("finished %s: %s", out, summary)
    return summary


# -- done-states: a finished run survives its job's failure ------------------------------
# A job trains all seeds of a cell, and when one of them fails Snakemake deletes every output
# of the job, the finished seeds' too (whose checkpoints are gone). So a finished run also
# keeps its files in <run>/.done/ (hard links: no extra space while the outputs exist) with a
# manifest of what the run was; the next attempt (train_cells) restores them from there
# instead of retraining, once the manifest, the files' hashes and the table's own metadata
# all say it is exactly the run asked for, made by this code. Anything else is discarded.
DONE = ".done"


def run_files(cfg: RunConfig) -> list[str]:
    """The files a finished run writes into its folder (finish_run)."""
    files = ["metrics.parquet"]
    if cfg.protocol == "epochs":
        files.append("final.pt")
    if cfg.noise_epochs:
        files.append("noise.parquet")
    return files


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _link(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy where the file system has none), atomically."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _plain(config: dict) -> dict:
    """A config as it reads back from JSON (tuples as lists), for comparison."""
    return json.loads(json.dumps(config, default=str))


def keep_done(cfg: RunConfig, out: Path, summary: dict) -> None:
    """Record a finished run's files in ``out``/.done/ with its manifest (written last)."""
    done = out / DONE
    manifest = done / "done.json"
    manifest.unlink(missing_ok=True)
    done.mkdir(exist_ok=True)
    files = {}
    for name in run_files(cfg):
        _link(out / name, done / name)
        files[name] = _sha256(done / name)
    record = {
        "config": _plain(cfg.to_dict()),
        "config_hash": config_hash(cfg.to_dict()),
        "code_version": code_version(),
        "summary": summary,
        "files": files,
    }
    tmp = done / ".done.json.tmp"
    tmp.write_text(json.dumps(record, indent=1, default=str))
    os.replace(tmp, manifest)


def _other_run(cfg: RunConfig, record: dict, what: str) -> str | None:
    """Why ``record`` (a manifest, or a table's metadata) is not of the run ``cfg`` made by
    this code; None if it is."""
    want, config = _plain(cfg.to_dict()), record.get("config") or {}
    differ = sorted(k for k in want.keys() | config.keys() if want.get(k) != config.get(k))
    if differ:
        shown = ", ".join(f"{k} {config.get(k)!r} (asked: {want.get(k)!r})" for k in differ)
        return f"its {what} is of another run: {shown}"
    if record.get("config_hash") != config_hash(cfg.to_dict()):
        return f"its {what} has config hash {record.get('config_hash')}"
    if record.get("code_version") != code_version():
        return f"its {what} was made by code {record.get('code_version')}, this is {code_version()}"
    return None


def _done_problem(cfg: RunConfig, done: Path) -> str | None:
    """Why ``done`` is not this run's finished state, made by this code; None if it is: its
    manifest, then every file against the manifest's hash, then the table's own metadata."""
    try:
        record = json.loads((done / "done.json").read_text())
    except (OSError, ValueError) as err:
        return f"its manifest cannot be read ({err})"
    if problem := _other_run(cfg, record, "manifest"):
        return problem
    for name in run_files(cfg):
        if not (done / name).is_file():
            return f"{name} is missing"
        if _sha256(done / name) != record.get("files", {}).get(name):
            return f"{name} is not the file it recorded (damaged or replaced)"
    try:
        meta = read_metadata(done / "metrics.parquet")
    except (OSError, ValueError) as err:
        return f"its metrics.parquet cannot be read ({err})"
    return _other_run(cfg, meta, "metrics.parquet")


def restore_done(cfg: RunConfig, out: str | os.PathLike) -> dict | None:
    """Put a finished run's files back into ``out`` from its done-state and return its
    summary; None (the run is to be trained) when there is none, or when it is not exactly
    this run made by this code: then it is deleted, with a warning that says why."""
    out = Path(out)
    done = out / DONE
    if not done.exists():
        return None
    problem = _done_problem(cfg, done)
    if problem is not None:
        log.warning("discarding %s, not used: %s; the run is trained", done, problem)
        shutil.rmtree(done, ignore_errors=True)
        return None
    for name in run_files(cfg):
        _link(done / name, out / name)
        os.utime(out / name)  # as new as a freshly written output
    (out / "checkpoint.pt").unlink(missing_ok=True)
    summary = read_metadata(out / "metrics.parquet")["summary"]
    log.info("restored %s from %s (finished in an earlier attempt), not retrained", out, done)
    return summary


def train(
    cfg: RunConfig,
    out_dir: str | os.PathLike,
    data: ImageData | None = None,
    *,
    interrupt_at_step: int | None = None,
    deadline: float | None = None,
    progress_every: float = 10.0,
) -> dict:
    """Train one run into ``out_dir``, resuming from its checkpoint if there is one.

    Returns the run summary (status, steps, sfo, epochs, reached). Raises ``Interrupted``
    after checkpointing when SIGTERM, SIGUSR1 or SIGINT arrives, when the clock passes
    ``deadline`` (a ``time.time()`` value: the end of a Slurm allocation less a margin), or at
    ``interrupt_at_step``, which tests use to stand in for a signal.
    """
    run = open_run(cfg, out_dir, data)
    check_every = checks_every(run.device)
    total_steps = cfg.epochs * run.steps_per_epoch if cfg.protocol == "epochs" else cfg.max_steps
    started = time.perf_counter()
    last_report, report_step = started, run.step
    with stop_requests() as stop:
        while not run.finished():
            if run.perm is None:
                run.perm = torch.randperm(
                    run.data.n_train, device=run.device, generator=run.generator
                )
            while run.pos < run.steps_per_epoch and run.status is None:
                run.train_step()
                if check_due(run, check_every):
                    run.check()
                stop.at(run.step, interrupt_at_step, deadline)
                if stop.signum is not None and run.status is None:
                    run.wall += time.perf_counter() - started
                    save_checkpoint(run)
                    raise Interrupted(
                        f"signal {stop.signum} at step {run.step}: checkpoint written to {run.ckpt}"
                    )
                now = time.perf_counter()
                if now - last_report >= progress_every:
                    rate = (run.step - report_step) / (now - last_report)
                    eta = (total_steps - run.step) / rate if rate > 0 else math.inf
                    log.info(
                        "epoch %d step %d/%d  %.1f steps/s  ETA %.0f s",
                        run.epoch + 1,
                        run.step,
                        total_steps,
                        rate,
                        eta,
                    )
                    last_report, report_step = now, run.step
            if run.status == "diverged":
                break
            run.close_epoch(run.wall + time.perf_counter() - started)
            if run.epoch % cfg.checkpoint_every == 0 and not run.finished():
                save_checkpoint(run)
    return finish_run(run)


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


def train_cells(
    runs: list[dict],
    seeds: list[int],
    tables: list[str],
    threads: int | None = None,
    deadline: float | None = None,
    fuse: bool = False,
) -> list[dict]:
    """Train the seeds of one or more cells in one process (data loaded once). ``runs`` are
    the cells' RunConfig keys but the seed; ``tables`` are the ``metrics.parquet`` paths,
    cell-major, one per cell and seed, whose folders become the run folders.

    ``fuse`` trains them all together as one fused network (``ensemble.train_fused``; the
    cells may differ only in learning rate), which pays on a GPU at small batch sizes;
    otherwise one after another. A run interrupted by a signal re-raises after its
    checkpoint, so the job fails and is retried (Snakemake ``retries``, Slurm requeue) and
    that run resumes from its checkpoint, while the runs that had finished are restored from
    their done-states (``restore_done``) rather than retrained.
    """
    if threads:
        torch.set_num_threads(threads)
    cfgs = [RunConfig.from_dict({**run, "seed": seed}) for run in runs for seed in seeds]
    if len(tables) != len(cfgs):
        raise ValueError(f"{len(tables)} tables for {len(cfgs)} runs")
    folders = [Path(path).parent for path in tables]
    # Runs that finished in a failed earlier attempt of this job (Snakemake then deleted
    # their outputs) come back from their done-states, untrained.
    summaries = [restore_done(cfg, folder) for cfg, folder in zip(cfgs, folders)]
    todo = [i for i, summary in enumerate(summaries) if summary is None]
    if not todo:
        return summaries
    data = load_dataset(cfgs[0].dataset, cfgs[0].data_root, cfgs[0].augment, cfgs[0].data_subset)
    if fuse and len(todo) > 1:
        from .ensemble import train_fused

        pack = [cfgs[i] for i in todo]
        lrs = sorted({c.lr for c in pack})
        log.info(
            "training seeds %s together%s: %s",
            sorted({c.seed for c in pack}),
            f" at learning rates {lrs}" if len(lrs) > 1 else "",
            pack[0],
        )
        trained = train_fused(pack, [folders[i] for i in todo], data, deadline=deadline)
        for i, summary in zip(todo, trained):
            summaries[i] = summary
        return summaries
    for i in todo:
        log.info("training %s", cfgs[i])
        summaries[i] = train(cfgs[i], folders[i], data, deadline=deadline)
    return summaries


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# -- command line ------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sgdsmooth.train", description="Train one run (see RunConfig)."
    )
    p.add_argument("--config", help="YAML file with RunConfig keys; flags override it")
    p.add_argument(
        "--out", required=True, help="run folder for metrics.parquet, final.pt, checkpoint.pt"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1, as train.threads): on CPU a run is bitwise "
        "reproducible, and resumes bitwise, at the same thread count",
    )
    for f in dataclasses.fields(RunConfig):
        kind = {"int": int, "float": float}.get(str(f.type), str)
        if f.name in ("full_grad_epochs", "noise_epochs"):
            p.add_argument(f"--{f.name.replace('_', '-')}", type=int, nargs="*", dest=f.name)
        elif str(f.type).startswith("bool"):  # --augment / --no-augment, --compile, ...
            p.add_argument(
                f"--{f.name.replace('_', '-')}",
                action=argparse.BooleanOptionalAction,
                default=None,
                dest=f.name,
            )
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, dest=f.name)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    values = {}
    if args.config:
        values = yaml.safe_load(Path(args.config).read_text()) or {}
    for f in dataclasses.fields(RunConfig):
        if getattr(args, f.name) is not None:
            values[f.name] = getattr(args, f.name)
    if args.threads < 1:
        print("error: --threads: must be at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        cfg = RunConfig.from_dict(values)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        train(cfg, args.out)
    except Interrupted as err:
        log.warning("%s", err)
        return 75  # EX_TEMPFAIL: try again, the run resumes
    return 0


if __name__ == "__main__":
    sys.exit(main())
