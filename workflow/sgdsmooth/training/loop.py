"""The training loop, for one run or many: ``train_runs`` trains runs as populations.

Runs that stand at the same point (a fresh start, or checkpoints of one job) and share
model, batch size and protocol train as one population (``population.Population``); a
single run is a population of one. Each epoch: draw every member's data, step the
population until the epoch ends or a member stops, hand the steps to the runs (their
stopping rules), close the epochs that ended (evaluation, noise, checkpoints), write the
finished runs' tables, and go on with the rest. A member that stops leaves: the population
is re-stacked without it, so it stops costing.

A SIGTERM, SIGUSR1 or SIGINT, the ``deadline`` (a Slurm allocation's end less a margin) or
a test's ``interrupt_at_step`` writes every unfinished member's checkpoint and raises
``Interrupted``: the job fails, is retried, and resumes (finished members are restored from
their done-states, ``done.restore_done``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from pathlib import Path

import pandas as pd
import torch

from .. import noise
from ..config import RunConfig, check_one_process
from ..data import ImageData, load_dataset
from ..models import Executor
from ..optim import make_optimizer
from ..tables import SCHEMAS, config_hash, write_table
from .device import configure, device_name, pick_device
from .done import keep_done, measures_noise, restore_done
from .population import Population
from .run import Run, atomic_save, load_checkpoint
from .signals import Interrupted, stop_requests

log = logging.getLogger("sgdsmooth.training")


def open_run(cfg: RunConfig, out_dir: str | os.PathLike | None, data: ImageData) -> Run:
    """A run ready to train into ``out_dir`` (None: writes nothing), resumed from the
    folder's checkpoint if there is one for this config. ``data`` is on the run's device."""
    cfg.validate()
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if cfg.augment is not None and data.augment != cfg.augment:
        data = dataclasses.replace(data, augment=cfg.augment)
    run = Run(cfg, data, data.train_x.device, out)
    if out is None or not run.ckpt.exists():
        return run
    state = load_checkpoint(run.ckpt, run.device, log)
    if state is None:
        return run
    if state["config_hash"] != config_hash(cfg.to_dict()):
        log.warning("ignoring %s: it belongs to another config", run.ckpt)
        return run
    run.load_state_dict(state)
    log.info("resumed from %s at epoch %d, step %d", run.ckpt, run.epoch, run.step)
    threads = state.get("threads", torch.get_num_threads())
    if run.device.type == "cpu" and threads != torch.get_num_threads():
        log.warning(
            "%s was written at %d CPU threads, this session has %d: the resumed run "
            "rounds differently from an uninterrupted one",
            run.ckpt,
            threads,
            torch.get_num_threads(),
        )
    return run


def save_checkpoint(run: Run) -> None:
    if run.out is not None:
        atomic_save(run.state_dict(), run.ckpt)


def checks_every(device: torch.device) -> int:
    # Checking the stopping rule needs the norms on the host; on a GPU batch the checks so
    # that the device is not synchronised every step. The stopping step stays exact (every
    # step's norm is kept) and so do the weights there (a stopped member freezes on the
    # device, Population's ``freeze``).
    return 1 if device.type == "cpu" else 25


# -- the end of an epoch ---------------------------------------------------------------
def _optimizer(run: Run, net: torch.nn.Module):
    """An optimizer over ``net`` holding the run's search direction (for measurements)."""
    c = run.cfg
    opt = make_optimizer(c.optimizer, list(net.parameters()), c.lr, c.beta)
    if c.optimizer != "sgd":  # SGD's direction is the gradient itself: no state
        for name, p in net.named_parameters():
            opt.state[p]["direction"] = run.directions[name].clone()
    return opt


def measure_noise(run: Run) -> dict:
    """One row of the run's noise table at its current point (the run is not disturbed)."""
    c, start = run.cfg, time.perf_counter()
    net = run.network()
    values = noise.measure(
        net,
        _optimizer(run, net),
        run.data,
        c.lr,
        c.batch_size,
        c.seed + 1000 * run.epoch,
        n_batches=c.noise_batches,
        direction_steps=c.noise_steps,
        per_example=c.noise_per_example,
    )
    return {
        "optimizer": c.optimizer,
        "lr": c.lr,
        "beta": 0.0 if c.optimizer == "sgd" else c.beta,
        "batch_size": c.batch_size,
        "seed": c.seed,
        "protocol": c.protocol,
        "epoch": run.epoch + 1,
        "step": run.last_step,
        **values,
        "seconds": time.perf_counter() - start,
    }


def epoch_measurements(run: Run, test: tuple[float, float]) -> dict:
    """The fixed-epoch protocol's per-epoch numbers: test loss and accuracy (``test``, from
    the population's evaluation), and ‖∇F_b‖² at the epochs that ask for it."""
    full = math.nan
    if run.epoch + 1 in run.cfg.noise_epochs:
        run.noise_rows.append(measure_noise(run))
        full = run.noise_rows[-1]["k2"]  # the same ‖∇F_b(x)‖²: not computed twice
    elif run.epoch + 1 in run.cfg.full_grad_epochs:
        seed = 20_000 + run.cfg.seed + 1000 * run.epoch
        full = noise.full_gradient_norm_sq(run.network(), run.data, run.cfg.batch_size, seed)
    return {"test_loss": test[0], "test_accuracy": test[1], "full_grad_norm_sq": full}


def cbs_measurements(run: Run) -> None:
    """A CBS run's noise rows at the end of an epoch: after the epochs ``noise_epochs`` names,
    and at its stop T when ``noise_at_stop`` (at the weights after step T, also where the
    rule is checked only every few steps)."""
    if run.status is None and run.epoch + 1 in run.cfg.noise_epochs:
        run.noise_rows.append(measure_noise(run))
    if run.cfg.noise_at_stop and run.status is not None:
        run.noise_rows.append(measure_noise(run))


def finish_run(run: Run) -> dict:
    """Write the run's tables (and final weights), remove its checkpoint; the summary."""
    cfg, out = run.cfg, run.out
    summary = run.summary()
    if out is None:
        return summary
    schema = "cbs_epochs" if cfg.protocol == "cbs" else "epochs"
    frame = pd.DataFrame(run.rows, columns=SCHEMAS[schema].names)
    if cfg.protocol == "epochs":  # also when diverged: the table's status says what they are
        atomic_save(run.weights, out / "final.pt")
    meta = {
        "config": cfg.to_dict(),
        "config_hash": config_hash(cfg.to_dict()),
        "seed": cfg.seed,
        "device": device_name(run.device),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "tf32": run.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32,
        "summary": summary,
        # What K² and the noise table are gradients of (sgdsmooth.noise): F_b of this run's b.
        "gradient_function": {
            "bn_mode": noise.BN_MODE,
            "batch_size": cfg.batch_size,
            "augmented": bool(run.data.augment),
            "name": noise.function_name(cfg.batch_size, bool(run.data.augment)),
        },
    }
    if measures_noise(cfg):
        noise_frame = pd.DataFrame(run.noise_rows, columns=SCHEMAS["noise"].names)
        write_table(noise_frame, out / "noise.parquet", "noise", meta)
    write_table(frame, out / "metrics.parquet", schema, meta)
    keep_done(run.cfg, out, summary)
    run.ckpt.unlink(missing_ok=True)
    log.info("finished %s: %s", out, summary)
    return summary


# -- the loop --------------------------------------------------------------------------
class _Clock:
    """Wall time of this session, added to each run's earlier sessions; progress lines."""

    def __init__(self, every: float, step: int):
        self.started = self.last = time.perf_counter()
        self.every, self.last_step = every, step  # a resumed run's rate counts from its step

    def wall(self, run: Run) -> float:
        return run.wall + time.perf_counter() - self.started

    def report(self, runs: list[Run]) -> None:
        now = time.perf_counter()
        if now - self.last < self.every:
            return
        r = runs[0]
        rate = (r.step - self.last_step) / (now - self.last)
        total = r.cfg.epochs * r.steps_per_epoch if r.cfg.protocol == "epochs" else r.cfg.max_steps
        eta = (total - r.step) / rate if rate > 0 else math.inf
        log.info(
            "%d run(s): epoch %d step %d/%d  %.1f steps/s  ETA %.0f s",
            len(runs),
            r.epoch + 1,
            r.step,
            total,
            rate,
            eta,
        )
        self.last, self.last_step = now, r.step


def _check_due(pop: Population, every: int) -> bool:
    """Whether to hand the steps to the runs now: every ``every`` steps, at the end of an
    epoch and at a CBS run's step budget (a fixed-epoch run has none: ``max_steps`` is the
    CBS protocol's, and past it a check every step would sync the device every step)."""
    return (
        len(pop.pending) >= every
        or pop.runs[0].pos >= pop.runs[0].steps_per_epoch
        or any(r.cfg.protocol == "cbs" and r.step >= r.cfg.max_steps for r in pop.runs)
    )


def _close_epochs(pop: Population, clock: _Clock) -> None:
    """After the population's step loop: close the epochs that ended, checkpoint, finish."""
    pop.release()
    closing = [r for r in pop.runs if r.status != "diverged" and r.epoch_over()]
    tests = pop.evaluate() if any(r.cfg.protocol == "epochs" for r in closing) else None
    for i, r in enumerate(pop.runs):
        if r in closing:
            if r.cfg.protocol == "epochs":
                measured = epoch_measurements(r, tests[i])
            else:
                measured = None
                cbs_measurements(r)
            r.close_epoch(clock.wall(r), measured)
            if r.epoch % r.cfg.checkpoint_every == 0 and not r.finished():
                save_checkpoint(r)
        if r.finished():
            r.result = finish_run(r)


def _train_population(
    runs: list[Run], executor: Executor, interrupt_at_step, deadline, progress_every, every
) -> None:
    """Train ``runs`` (all at one point) to the end as one population, regrouped as they
    stop; their stopping rules are checked every ``every`` steps."""
    clock = _Clock(progress_every, runs[0].step)
    active = [r for r in runs if not r.finished()]
    pop = None
    with stop_requests() as stop:
        while active:
            for r in active:
                r.begin_epoch()
            if pop is None or pop.runs != active:  # (re)stack only when a member has left
                pop = Population(active, executor, freeze=every > 1)
            pop.load_epoch()
            while not any(r.epoch_over() for r in active):
                pop.train_step()
                if _check_due(pop, every):
                    pop.take()
                stop.at(active[0].step, interrupt_at_step, deadline)
                if stop.signum is not None:
                    break
                clock.report(active)
            pop.take()
            _close_epochs(pop, clock)
            active = [r for r in active if not r.finished()]
            if stop.signum is not None and active:
                for r in active:
                    r.wall = clock.wall(r)
                    save_checkpoint(r)
                raise Interrupted(
                    f"signal {stop.signum} at step {active[0].step}: "
                    f"{len(active)} checkpoint(s) written"
                )


def populations(runs: list[Run], together: bool) -> list[list[Run]]:
    """The populations ``runs`` train in: one per point of training, model, batch size,
    protocol and augmentation (a population's batches come from one data set) when
    ``together``, else one per run."""
    if not together:
        return [[r] for r in runs]
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        key = (r.cfg.model, r.cfg.batch_size, r.cfg.protocol, r.data.augment, r.progress_key())
        groups.setdefault(key, []).append(r)
    if len(groups) > 1:
        log.info(
            "%d runs train as %d populations (points of training differ)", len(runs), len(groups)
        )
    return list(groups.values())


def train_runs(
    runs: list[Run],
    executor: Executor | None = None,
    *,
    together: bool = True,
    interrupt_at_step: int | None = None,
    deadline: float | None = None,
    progress_every: float = 10.0,
    check_every: int | None = None,
) -> list[dict]:
    """Train opened runs to the end; their summaries. ``together``: as populations (see
    ``populations``), else one after another. ``check_every``: steps between looks at the
    stopping rules (default ``checks_every``: 1 on a CPU, 25 on a GPU)."""
    check_one_process([r.cfg for r in runs])
    executor = executor or executor_for(runs[0].cfg)
    every = check_every or checks_every(runs[0].device)
    for group in populations(runs, together):
        if len(group) == 1:
            log.info("training %s", group[0].cfg)
        else:
            log.info("training %d run(s) together: %s", len(group), [r.cfg for r in group])
        _train_population(group, executor, interrupt_at_step, deadline, progress_every, every)
    return [r.result or r.summary() for r in runs]


def executor_for(cfg: RunConfig) -> Executor:
    return Executor(cfg.precision, cfg.channels_last, cfg.compile, cfg.cuda_graph)


def _load(cfg: RunConfig, data: ImageData | None) -> ImageData:
    device = pick_device(cfg.device)
    configure(device, cfg.deterministic)
    if data is None:
        data = load_dataset(cfg.dataset, cfg.data_root, cfg.augment, cfg.data_subset)
    return data.to(device)


def train(
    cfg: RunConfig,
    out_dir: str | os.PathLike,
    data: ImageData | None = None,
    *,
    interrupt_at_step: int | None = None,
    deadline: float | None = None,
    progress_every: float = 10.0,
) -> dict:
    """Train one run into ``out_dir`` (a population of one), resuming from its checkpoint if
    there is one. Returns the run summary (status, steps, sfo, epochs, reached). Raises
    ``Interrupted`` after checkpointing on a signal, past ``deadline`` (a ``time.time()``
    value) or at ``interrupt_at_step`` (tests' stand-in for a signal)."""
    run = open_run(cfg, out_dir, _load(cfg, data))
    return train_runs(
        [run], interrupt_at_step=interrupt_at_step, deadline=deadline, progress_every=progress_every
    )[0]


def train_many(
    cfgs: list[RunConfig],
    folders: list,
    data: ImageData | None = None,
    *,
    together: bool = True,
    interrupt_at_step: int | None = None,
    deadline: float | None = None,
    progress_every: float = 10.0,
) -> list[dict]:
    """Train runs into their folders, together as populations (or one after another);
    finished runs come back from their done-states untrained."""
    check_one_process(cfgs)
    summaries = [restore_done(c, f) for c, f in zip(cfgs, folders)]
    todo = [i for i, s in enumerate(summaries) if s is None]
    if not todo:
        return summaries
    data = _load(cfgs[todo[0]], data)  # on the device once, shared by every member
    runs = [open_run(cfgs[i], folders[i], data) for i in todo]
    for i, summary in zip(
        todo,
        train_runs(
            runs,
            together=together,
            interrupt_at_step=interrupt_at_step,
            deadline=deadline,
            progress_every=progress_every,
        ),
    ):
        summaries[i] = summary
    return summaries


def train_cells(
    runs: list[dict],
    seeds: list[int],
    tables: list[str],
    threads: int | None = None,
    deadline: float | None = None,
    together: bool = False,
) -> list[dict]:
    """Train the seeds of one or more cells in one process (data loaded once): the training
    job of the workflow. ``runs`` are the cells' RunConfig keys but the seed; ``tables`` are
    the ``metrics.parquet`` paths, cell-major, one per cell and seed, whose folders become the
    run folders. ``together``: as populations, else one run after another."""
    if threads:
        torch.set_num_threads(threads)
    cfgs = [RunConfig.from_dict({**run, "seed": seed}) for run in runs for seed in seeds]
    if len(tables) != len(cfgs):
        raise ValueError(f"{len(tables)} tables for {len(cfgs)} runs")
    folders = [Path(path).parent for path in tables]
    return train_many(cfgs, folders, together=together, deadline=deadline)
