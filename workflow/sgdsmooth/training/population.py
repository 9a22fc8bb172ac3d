"""A population: K runs of one network shape and batch size trained by one step.

The runs may differ in seed, learning rate, momentum and optimizer (SGD, SHB, NSHB are one
recursion with per-member coefficients, ``optim.stacked_step``). Each member draws its own
data order and augmentation (``run.Run``); one step gathers all members' batches, runs the
stacked network (``stacked.stack``) forward and backward on them, and updates every member,
so the GPU sees a few large kernels instead of K·(a few hundred) small ones. On CUDA the
whole step can be recorded once as a CUDA graph and replayed (``graphs.CapturedStep``).

The loss is the sum of the members' mean losses, so each member's gradient is exactly its
own; nothing in the network mixes members, so a member's numbers do not depend on who else
is in the population (up to float rounding: with K = 1 the layers use the ordinary kernels,
with K > 1 batched GEMMs).

A CBS member that meets its stopping rule between two checks (on a GPU the host looks at the
steps every few, ``loop.checks_every``) must not take the steps that remain until the check:
with ``freeze`` the step applies the rule on the device too (``run.stop_hits``, as
``Run.record`` will) and from then on gives that member a zero gradient (its loss counts
zero) and η = 0, β = 1: its weights and direction stay those after its step T (bitwise, but
that a −0 may turn +0; as long as its losses at those weights stay finite, which the host
checks). Its BatchNorm running statistics go on averaging batch statistics (at those weights)
until it leaves: nothing of a CBS run reads them, every measurement of one uses BatchNorm in
train mode (``noise.BN_MODE``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data import ImageData
from ..models import Executor, make_model
from ..optim import coefficients, stacked_step
from . import stacked
from .run import Run, stop_hits


class Population:
    """The stacked network, directions and coefficients of ``runs`` (all at one point of
    training); ``release`` hands each run its weights back. ``freeze``: a member that stops
    stays where it stopped until the host sees it (CBS runs checked every few steps)."""

    def __init__(self, runs: list[Run], executor: Executor | None = None, freeze: bool = False):
        first = runs[0]
        for r in runs:
            r.begin_epoch()
        keys = {
            (r.cfg.model, r.cfg.batch_size, r.cfg.protocol, r.steps_per_epoch, r.data.augment)
            for r in runs
        }
        if len(keys) > 1 or len({r.progress_key() for r in runs}) > 1:
            raise ValueError(
                "a population's runs share model, batch size, protocol and augmentation, and "
                "stand at one point"
            )
        self.runs, self.k, self.b = list(runs), len(runs), first.cfg.batch_size
        self.data: ImageData = first.data
        self.device = first.device
        self.executor = executor or Executor()
        template = make_model(first.cfg.model, self.data.num_classes, self.data.in_channels)
        self.net = stacked.stack([template] * self.k).to(self.device)
        self.net.load_state_dict(stacked.stacked_state([r.weights for r in runs]))
        if self.executor.channels_last and self.k == 1:  # (batched GEMMs need no layout)
            stacked.to_channels_last(self.net)
        self.forward = self.executor.prepare(self.net)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        names = [n for n, p in self.net.named_parameters() if p.requires_grad]
        self.directions = [
            torch.stack([r.directions[n] for r in runs]).to(p) for n, p in zip(names, self.params)
        ]
        self._names = names
        coef = coefficients(
            [r.cfg.optimizer for r in runs], [r.cfg.lr for r in runs], [r.cfg.beta for r in runs]
        )
        dtype = self.params[0].dtype
        self.coef = {k: torch.tensor(v, dtype=dtype, device=self.device) for k, v in coef.items()}
        self.pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        # The members' epoch data stacked (K, b·steps): a step gathers its batch from them
        # with one index, inside its CUDA graph when there is one; refilled in place.
        self.perm = torch.stack([r.perm for r in runs])
        self.draws = {k: torch.stack([r.draws[k] for r in runs]) for k in first.draws}
        self._epoch = first.epoch
        self._pos = torch.zeros((), dtype=torch.int64, device=self.device)
        self._offsets = torch.arange(self.b, device=self.device)
        self._step = None  # made at the first step (Executor.capture)
        self.freeze = freeze and first.cfg.protocol == "cbs"
        if self.freeze:
            self._rule_state()

    def _rule_state(self) -> None:
        """The stopping rule's numbers on the device, one per member: Σ‖g_k‖ (float64, added
        a step at a time as ``Run.record`` adds it), t, ε, the least t, whether the rule is
        armed this epoch (set by ``load_epoch``) and whether the member still moves."""
        f64 = dict(dtype=torch.float64, device=self.device)
        self._norm_sum = torch.tensor([r.norm_sum for r in self.runs], **f64)
        self._t = torch.tensor([float(r.step) for r in self.runs], **f64)
        self._eps = torch.tensor([r.cfg.epsilon for r in self.runs], **f64)
        self._min_t = torch.tensor([float(r.min_steps()) for r in self.runs], **f64)
        self._armed = self._learned().to(self.device)
        self._moving = torch.ones(self.k, dtype=torch.bool, device=self.device)

    def _learned(self) -> torch.Tensor:
        """Whether each member's rule is armed (``Run.learned``), on the host."""
        return torch.tensor([r.learned() for r in self.runs])

    # -- one step ------------------------------------------------------------------------
    def load_epoch(self) -> None:
        """Take the members' data for a new epoch (they drew it in ``Run.begin_epoch``)."""
        if self.runs[0].epoch == self._epoch:
            return
        self.perm.copy_(torch.stack([r.perm for r in self.runs]))
        for k, v in self.draws.items():
            v.copy_(torch.stack([r.draws[k] for r in self.runs]))
        self._epoch = self.runs[0].epoch
        if self.freeze:  # a finished epoch may have armed the rule (cbs.learned_loss)
            self._armed.copy_(self._learned())

    def batch(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's mini-batch number ``pos`` of the epoch, member-major: (K·b, C, H, W)
        and (K·b,); ``pos`` is a device tensor, so that a CUDA graph can replay this."""
        cols = pos * self.b + self._offsets
        idx = self.perm.index_select(1, cols).reshape(-1)
        draws = {k: v.index_select(1, cols).reshape(-1) for k, v in self.draws.items()}
        x, y = self.data.batch(idx, draws)
        return self.executor.input(x), y

    def train_step(self) -> None:
        """One step of every member; its losses, gradient norms and correct counts wait in
        ``pending`` (on the device) until ``take``."""
        self._pos.fill_(self.runs[0].pos)
        if self._step is None:
            self._step = self.executor.capture(self.eager_step, (self._pos,), self._state())
        self.pending.append(self._step(self._pos))
        for r in self.runs:
            r.pos += 1
            r.step += 1

    def eager_step(self, pos: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Batch, forward, backward, update; per member (K,) loss, gradient norm and correct
        count."""
        x, y = self.batch(pos)
        with self.executor.autocast(x.device):
            out = self.forward(x)
            losses = F.cross_entropy(out, y, reduction="none").view(self.k, self.b).mean(1)
        for p in self.params:
            p.grad = None
        # A stopped member's loss counts zero: its gradient is 0 (not 0·g, NaN if g is not finite)
        (losses * self._moving if self.freeze else losses).sum().backward()
        norms = sum(p.grad.pow(2).reshape(self.k, -1).sum(1) for p in self.params).sqrt()
        stacked_step(self.params, self.directions, **self._coefficients())
        if self.freeze:
            self._apply_rule(norms.detach())
        correct = (out.argmax(1) == y).view(self.k, self.b).sum(1)
        return losses.detach(), norms.detach(), correct

    def _coefficients(self) -> dict[str, torch.Tensor]:
        """The members' (η, β, a); a member that has stopped gets (0, 1, 0) and a zero gradient
        (``eager_step``): d ← 1·d + 0·0, x ← x − 0·d, its weights and direction as they were."""
        if not self.freeze:
            return self.coef
        moving = self._moving.to(self.coef["lr"].dtype)
        return {
            "lr": self.coef["lr"] * moving,
            "beta": torch.where(self._moving, self.coef["beta"], 1.0),
            "scale": self.coef["scale"] * moving,
        }

    @torch.no_grad()
    def _apply_rule(self, norms: torch.Tensor) -> None:
        """After a step: members whose rule fires at this step stop moving from the next."""
        self._norm_sum.add_(norms.double())
        self._t.add_(1.0)
        hit = self._armed & stop_hits(self._norm_sum, self._t, self._eps, self._min_t)
        self._moving.logical_and_(~hit)

    def _state(self) -> list[torch.Tensor]:
        """Every tensor a step changes (a CUDA graph's warm-up must put them back)."""
        rule = [self._norm_sum, self._t, self._moving] if self.freeze else []
        return [*self.params, *self.net.buffers(), *self.directions, *rule]

    def take(self) -> None:
        """Hand the steps since the last call to the runs (one host transfer), each of which
        then checks its stopping rule."""
        if not self.pending:
            return
        losses, norms, correct = (torch.stack(t).cpu() for t in zip(*self.pending))
        self.pending = []
        for i, r in enumerate(self.runs):
            if r.status is None:
                r.record(losses[:, i], norms[:, i], correct[:, i])
        if self.freeze:
            self._check_rule()

    def _check_rule(self) -> None:
        """The device's stopping rule stopped exactly the members whose runs reached ε (a
        member frozen early, or left moving past its T, would have wrong weights), and no
        frozen member met a non-finite loss (its zero gradient would not have been zero)."""
        wrong = []
        for r, moving in zip(self.runs, self._moving.tolist()):
            name = f"{r.cfg.optimizer} η {r.cfg.lr} β {r.cfg.beta} seed {r.cfg.seed}"
            if moving == (r.status == "reached"):
                device = "moving" if moving else "stopped"
                wrong.append(f"{name} (run: {r.status or 'training'}, device: {device})")
            elif not moving and not all(map(math.isfinite, r.trace["loss"][r.counted() :])):
                wrong.append(f"{name} (frozen at step {r.stop_step}, then a non-finite loss)")
        if wrong:
            raise RuntimeError(
                f"the stopping rule on the device disagrees with the runs' at step "
                f"{self.runs[0].step}: {'; '.join(wrong)}"
            )

    # -- members -------------------------------------------------------------------------
    @torch.no_grad()
    def release(self) -> None:
        """Write each member's weights, statistics and direction back into its run."""
        state = self.net.state_dict()
        for i, r in enumerate(self.runs):
            r.weights = stacked.member_state(state, i)
            r.directions = {n: d[i].clone() for n, d in zip(self._names, self.directions)}

    @torch.no_grad()
    def evaluate(self) -> list[tuple[float, float]]:
        """Each member's mean loss and accuracy on the whole test set, BatchNorm in eval mode."""
        self.net.eval()
        data, k = self.data, self.k
        chunk = max(1, self.runs[0].cfg.eval_batch_size // k)
        loss_sum = torch.zeros(k, dtype=torch.float64, device=self.device)
        correct = torch.zeros(k, dtype=torch.int64, device=self.device)
        for start in range(0, data.test_x.shape[0], chunk):
            x = data.normalize(data.test_x[start : start + chunk])
            y = data.test_y[start : start + chunk]
            out = self.net(x.repeat(k, 1, 1, 1)).view(k, x.shape[0], -1)
            losses = F.cross_entropy(out.transpose(1, 2), y.expand(k, -1), reduction="none")
            loss_sum += losses.double().sum(1)
            correct += (out.argmax(2) == y).sum(1)
        self.net.train()
        n = data.test_x.shape[0]
        return [(float(s) / n, float(c) / n) for s, c in zip(loss_sum.cpu(), correct.cpu())]
