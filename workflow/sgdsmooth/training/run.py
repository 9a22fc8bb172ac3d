"""One run's state and bookkeeping: data order, trace, stopping rule, epoch rows, checkpoint.

A ``Run`` holds everything of a run except the arithmetic of its steps, which its
population does for all members at once (``population.Population``). While a run is in a
population its weights live there; outside one (before, between regroupings, after) they
are in ``weights`` and ``directions`` as the member network's own state dict.

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

Random numbers: the model is initialised from ``torch.manual_seed(seed)``; each epoch's
shuffle and then its augmentation draws come from one generator seeded with ``seed``, drawn
at the start of the epoch and kept in checkpoints, so a run's data do not depend on the
population it trains in, and a resumed run is the same as an uninterrupted one.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from pathlib import Path

import torch

from ..config import RunConfig
from ..data import ImageData
from ..models import make_model
from ..paths import naming
from ..tables import config_hash


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, then renamed: a kill leaves the old file or the
    new one, never half of one. A failed write names the path (torch's error does not)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with naming(tmp):
        torch.save(obj, tmp)
    os.replace(tmp, path)


def stop_hits(norm_sums, t, epsilon, min_steps):
    """The CBS stopping rule's test after step t, elementwise over tensors that broadcast:
    the running mean of the gradient norms (1/t)·Σ_{k≤t}‖g_k‖ is at most ε, and t ≥
    ``min_steps``. (The rule's third condition, that the run has learned, holds or fails for
    a whole epoch: the caller's.) The one statement of the rule: ``Run.record`` applies it to
    the steps since its last check, a population's step to its members on the device."""
    return (norm_sums / t <= epsilon) & (t >= min_steps)


class Run:
    """One training run's complete state outside its population's arithmetic."""

    def __init__(
        self, cfg: RunConfig, data: ImageData, device: torch.device, out: Path | None = None
    ):
        self.cfg, self.data, self.device = cfg, data, device
        self.out = out  # the run folder (None: a run that writes nothing, as in benchmarks)
        torch.manual_seed(cfg.seed)
        net = make_model(cfg.model, data.num_classes, data.in_channels).to(device)
        self.weights = net.state_dict()
        self.directions = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(cfg.seed)
        self.steps_per_epoch = data.n_train // cfg.batch_size  # drop the last partial batch
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimizer steps
        self.pos = 0  # steps done in the current epoch
        self.perm: torch.Tensor | None = None  # this epoch's shuffle
        self.draws: dict[str, torch.Tensor] = {}  # this epoch's augmentation, one per example
        # per step since the epoch began, on the host: loss, ‖g‖, correct count
        self.trace: dict[str, list[float]] = {"loss": [], "norm": [], "correct": []}
        self.norm_sum = 0.0  # Σ‖g_k‖ up to the last checked step, in float64
        self.rows: list[dict] = []
        self.noise_rows: list[dict] = []
        self.status: str | None = None
        self.stop_step: int | None = None
        self.wall = 0.0  # seconds spent in earlier sessions of this run
        self.result: dict | None = None  # the summary, once the run's tables are written

    # -- the data of an epoch ------------------------------------------------------------
    def begin_epoch(self) -> None:
        """Draw this epoch's shuffle and augmentation, unless drawn already (a resume)."""
        if self.perm is None:
            self.perm = torch.randperm(
                self.data.n_train, device=self.device, generator=self.generator
            )
            used = self.steps_per_epoch * self.cfg.batch_size
            self.draws = self.data.draw(used, self.generator)

    # -- checkpoints ---------------------------------------------------------------------
    @property
    def ckpt(self) -> Path:
        return self.out / "checkpoint.pt"

    def state_dict(self) -> dict:
        return {
            "config_hash": config_hash(self.cfg.to_dict()),
            "model": self.weights,
            "directions": self.directions,
            "generator": self.generator.get_state(),
            **{k: getattr(self, k) for k in self._COUNTERS},
            "perm": self.perm,
            "draws": self.draws,
            "threads": torch.get_num_threads(),  # on CPU the bitwise result depends on it
        }

    _COUNTERS = ("epoch", "step", "pos", "trace", "norm_sum", "rows", "wall", "noise_rows")

    def load_state_dict(self, state: dict) -> None:
        self.weights = {k: v.to(self.device) for k, v in state["model"].items()}
        self.directions = {k: v.to(self.device) for k, v in state["directions"].items()}
        self.generator.set_state(state["generator"])
        for key in self._COUNTERS:
            setattr(self, key, state[key])
        self.perm = None if state["perm"] is None else state["perm"].to(self.device)
        self.draws = {k: v.to(self.device) for k, v in state["draws"].items()}

    # -- the stopping rule ---------------------------------------------------------------
    def record(self, losses: torch.Tensor, norms: torch.Tensor, correct: torch.Tensor) -> None:
        """Take the steps since the last check (host tensors, one entry a step), then look at
        them in order, as a check after every step would: the first step with a non-finite
        loss ends the run as diverged, unless the stopping rule fired before it (a member
        frozen at its T steps on until the host looks, ``Population``'s ``freeze``)."""
        first = self.step - len(losses) + 1  # global index t of losses[0]
        self.trace["loss"] += losses.tolist()
        self.trace["norm"] += norms.tolist()
        self.trace["correct"] += correct.tolist()
        bad = (~torch.isfinite(losses)).nonzero()
        finite = int(bad[0]) if len(bad) else len(losses)  # the steps before the first bad one
        if self.cfg.protocol == "cbs" and finite:
            self._stopping_rule(norms[:finite], first)
        if self.status is None and finite < len(losses):
            self.status = "diverged"

    def _stopping_rule(self, norms: torch.Tensor, first: int) -> None:
        """The CBS rule over steps ``first``, ``first`` + 1, … (their norms): reached at the
        first step it fires, censored at the budget; Σ‖g_k‖ carried to the next check."""
        # Σ‖g_k‖ added one step at a time, as a population's step adds it on the device
        # (Population.freeze), so that both find the same T to the last bit.
        sums = torch.tensor(
            list(itertools.accumulate(norms.double().tolist(), initial=self.norm_sum))[1:],
            dtype=torch.float64,
        )
        t = torch.arange(first, first + len(norms), dtype=torch.float64)
        hit = stop_hits(sums, t, self.cfg.epsilon, self.min_steps())
        if hit.any() and not self.learned():  # asked only when the rule would fire
            hit[:] = False
        if hit.any():
            self.stop_step = first + int(hit.nonzero()[0])
            self.status = "reached"
        elif first + len(norms) - 1 >= self.cfg.max_steps:
            self.stop_step = first + len(norms) - 1
            self.status = "censored"
        self.norm_sum = (
            float(sums[-1]) if self.status is None else float(sums[self.stop_step - first])
        )

    def min_steps(self) -> int:
        """The fewest steps after which the stopping rule may fire: ``min_epochs`` epochs."""
        return self.cfg.min_epochs * self.steps_per_epoch

    @property
    def last_step(self) -> int:
        """The run's last step that counts: its stopping step once it has stopped, else its
        step. Its weights stand there too (a stopped member's later steps in its population
        leave them alone)."""
        return self.stop_step if self.stop_step is not None else self.step

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

    def finished(self) -> bool:
        if self.status is not None:
            return True
        return self.cfg.protocol == "epochs" and self.epoch >= self.cfg.epochs

    def epoch_over(self) -> bool:
        """Whether the run leaves the current epoch: its last step is done, or it stopped."""
        return self.pos >= self.steps_per_epoch or self.status is not None

    # -- one epoch's row -----------------------------------------------------------------
    def counted(self) -> int:
        """Steps of this epoch that count: those up to the stopping step."""
        n = len(self.trace["loss"])
        return n - (self.step - self.stop_step) if self.stop_step is not None else n

    def close_epoch(self, wall: float, measured: dict | None = None) -> None:
        """Append the epoch's row; ``measured`` holds the fixed-epoch protocol's evaluation
        (test_loss, test_accuracy, full_grad_norm_sq), which needs the network."""
        n = self.counted()
        losses = torch.tensor(self.trace["loss"][:n], dtype=torch.float64)
        norms = torch.tensor(self.trace["norm"][:n], dtype=torch.float64)
        step = self.last_step
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
            row |= {
                "lr": self.cfg.lr,
                "train_accuracy": sum(self.trace["correct"][:n]) / (n * self.cfg.batch_size),
                "grad_norm_mean": float(norms.mean()),
                **(measured or {}),
            }
        self.rows.append(row)
        self.trace = {k: [] for k in self.trace}
        self.epoch += 1
        self.pos = 0
        self.perm, self.draws = None, {}

    def summary(self) -> dict:
        steps = self.last_step
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

    def network(self) -> torch.nn.Module:
        """The run's network with its current weights (an ordinary module, for measurements)."""
        net = make_model(self.cfg.model, self.data.num_classes, self.data.in_channels)
        net = net.to(self.device)
        net.load_state_dict(self.weights)
        return net

    def progress_key(self) -> tuple[int, int, int]:
        """Where the run stands; runs train together only from the same point."""
        return (self.epoch, self.pos, self.step)


def load_checkpoint(path: Path, device: torch.device, log) -> dict | None:
    """A checkpoint's state; None when it cannot be read (truncated by a full disk or a kill
    outside ``atomic_save``): it is then set aside as ``checkpoint.pt.corrupt-<time>``, with
    a warning, and the run starts afresh instead of failing every retry."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(state, dict) or "config_hash" not in state or "directions" not in state:
            raise ValueError("not a checkpoint of sgdsmooth.training")
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
