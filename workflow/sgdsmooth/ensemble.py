"""K training runs as one network: the fused form of a vectorized ensemble.

Small batches leave a GPU idle between tiny kernels. Training the seeds of one cell
together fills it: member k's weights become channel group k of one wider network.

- ``Conv2d`` → the same convolution with K times the channels and K times the groups, so
  group k sees only member k's channels;
- ``BatchNorm2d(C)`` → ``BatchNorm2d(K·C)``: statistics are per channel, hence per member;
- ``Linear`` → ``GroupedLinear``, one weight matrix per member.

Member k's mini-batch travels in channel group k of the input, so every member sees its own
examples; the loss is the sum of the members' mean losses, so each member's gradient is
exactly its own. The optimizer's update is elementwise, so one SGD/SHB/NSHB step on the
packed parameters is K separate steps, each with its own learning rate if they differ.
Every packed parameter is member-major: viewed as (K, −1), row k is member k
(``member_view``), which gives per-member gradient norms and per-member learning rates.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from .data import load_dataset
from .models import Executor


class GroupedLinear(nn.Module):
    """K independent linear maps: input (b, K·in) → output (b, K, out)."""

    def __init__(self, members: list[nn.Linear]):
        super().__init__()
        self.k = len(members)
        self.weight = nn.Parameter(
            torch.stack([m.weight.detach() for m in members])
        )  # (K, out, in)
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in members]))  # (K, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], self.k, -1)
        return torch.einsum("bki,koi->bko", x, self.weight) + self.bias


def _pack_conv(members: list[nn.Conv2d]) -> nn.Conv2d:
    m, k = members[0], len(members)
    conv = nn.Conv2d(
        m.in_channels * k,
        m.out_channels * k,
        m.kernel_size,
        m.stride,
        m.padding,
        m.dilation,
        m.groups * k,
        m.bias is not None,
        m.padding_mode,
    ).to(m.weight)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([c.weight for c in members]))
        if m.bias is not None:
            conv.bias.copy_(torch.cat([c.bias for c in members]))
    return conv


def _pack_bn(members: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    m = members[0]
    bn = nn.BatchNorm2d(
        m.num_features * len(members), m.eps, m.momentum, m.affine, m.track_running_stats
    )
    bn = bn.to(m.running_mean)  # the members' dtype and device
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(torch.cat([getattr(b, name) for b in members]))
        bn.num_batches_tracked.copy_(m.num_batches_tracked)
    return bn


def pack(models: list[nn.Module]) -> nn.Module:
    """One network computing all ``models`` (same architecture, any weights)."""
    packed = copy.deepcopy(models[0])
    names = [
        n
        for n, mod in packed.named_modules()
        if isinstance(mod, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
    ]
    for name in names:
        parts = [m.get_submodule(name) for m in models]
        kind = type(parts[0])
        new = (
            _pack_conv(parts)
            if kind is nn.Conv2d
            else _pack_bn(parts)
            if kind is nn.BatchNorm2d
            else GroupedLinear(parts)
        )
        parent, _, leaf = name.rpartition(".")
        setattr(packed.get_submodule(parent) if parent else packed, leaf, new)
    packed.members = len(models)
    return packed


def member_view(t: torch.Tensor, k: int) -> torch.Tensor:
    """A packed parameter (or its gradient) as (K, −1): row k is member k's."""
    return t.reshape(k, -1)


def member_grad_norms(params: list[torch.Tensor], k: int) -> torch.Tensor:
    """‖g‖ of each member's gradient, over all its parameters: shape (K,)."""
    sq = sum(member_view(p.grad, k).pow(2).sum(1) for p in params)
    return sq.sqrt()


def unpack(packed: nn.Module, template: nn.Module, k: int) -> list[nn.Module]:
    """The K member networks of ``packed``, as copies of ``template``'s architecture."""
    state = packed.state_dict()
    out = []
    for i in range(k):
        mine = {}
        for key, ref in template.state_dict().items():
            t = state[key]
            mine[key] = (
                t.clone()
                if key.endswith("num_batches_tracked")
                else member_view(t, k)[i].reshape(ref.shape).clone()
            )
        member = copy.deepcopy(template)
        member.load_state_dict(mine)
        out.append(member)
    return out


def fused_input(batches: list[torch.Tensor]) -> torch.Tensor:
    """Member batches (b, C, H, W) each → one input (b, K·C, H, W), member k in group k."""
    return torch.cat(batches, dim=1)


def member_lrs(params: list[torch.Tensor], lrs: list[float]) -> list[torch.Tensor]:
    """Per-member learning rates as one tensor per packed parameter, broadcasting over it:
    member k's η on member k's rows (dimension 0 is member-major in every packed tensor)."""
    k = len(lrs)
    return [
        torch.tensor(lrs, dtype=p.dtype, device=p.device)
        .repeat_interleave(p.shape[0] // k)
        .view(-1, *[1] * (p.dim() - 1))
        for p in params
    ]


class FusedTrainer:
    """One optimizer step for K runs at once: the members' batches in, per-member loss and
    gradient norm out (the quantities a run records each step). ``lr`` is one learning
    rate for all members or one per member."""

    def __init__(
        self,
        models: list[nn.Module],
        optimizer: str,
        lr: float | list[float],
        beta: float = 0.0,
        executor: Executor | None = None,
    ):
        from .optim import make_optimizer

        self.k = len(models)
        self.model = pack(models)
        self.executor = executor or Executor()
        self.forward = self.executor.prepare(self.model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if isinstance(lr, (list, tuple)):
            if len(lr) != self.k:
                raise ValueError(f"{len(lr)} learning rates for {self.k} members")
            # One η for all keeps the scalar update, bitwise that of a separate run.
            lr = (
                float(lr[0])
                if len(set(lr)) == 1
                else member_lrs(self.params, [float(v) for v in lr])
            )
        self.optimizer = make_optimizer(optimizer, self.params, lr, beta)
        self._step = (
            None  # made at the first step (Executor.capture), after from_runs has set the state
        )

    def step(
        self, xs: list[torch.Tensor], ys: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Losses (K,), gradient norms (K,) and correct counts (K,) of one step."""
        x, y = self.executor.input(fused_input(xs)), torch.stack(ys, 1)
        if self._step is None:
            self._step = self.executor.capture(self.eager_step, (x, y), self.model, self.optimizer)
        return self._step(x, y)

    def eager_step(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step on the fused input x (b, K·C, H, W) with labels y (b, K)."""
        with self.executor.autocast(x.device):
            out = self.forward(x)
            losses = torch.stack([F.cross_entropy(out[:, i], y[:, i]) for i in range(self.k)])
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        norms = member_grad_norms(self.params, self.k)
        self.optimizer.step()
        return losses.detach(), norms.detach(), (out.argmax(2) == y).sum(0)

    # -- moving state between the members' runs and the packed network -------------------
    @classmethod
    def from_runs(cls, runs: list) -> FusedTrainer:
        """Pack the runs' current weights, BatchNorm statistics and search directions."""
        cfg = runs[0].cfg
        fused = cls(
            [r.model for r in runs],
            cfg.optimizer,
            [r.cfg.lr for r in runs],
            cfg.beta,
            runs[0].executor,
        )
        members = [dict(r.model.named_parameters()) for r in runs]
        for name, p in fused.model.named_parameters():
            dirs = [
                r.optimizer.state[m[name]].get("direction")
                if m[name] in r.optimizer.state
                else None
                for r, m in zip(runs, members)
            ]
            if all(d is not None for d in dirs):  # SHB/NSHB after their first step
                fused.optimizer.state[p]["direction"] = torch.stack(
                    [d.reshape(-1) for d in dirs]
                ).reshape(p.shape)
        return fused

    @torch.no_grad()
    def store(self, runs: list) -> None:
        """Write member i's weights, statistics and direction back into ``runs[i]``."""
        for i, r in enumerate(runs):
            params, buffers = dict(r.model.named_parameters()), dict(r.model.named_buffers())
            for name, p in self.model.named_parameters():
                mine = params[name]
                mine.copy_(member_view(p, self.k)[i].view_as(mine))
                d = self.optimizer.state[p].get("direction") if p in self.optimizer.state else None
                if d is not None:
                    r.optimizer.state[mine]["direction"] = (
                        member_view(d, self.k)[i].view_as(mine).clone()
                    )
            for name, buf in self.model.named_buffers():
                mine = buffers[name]
                mine.copy_(buf if buf.dim() == 0 else member_view(buf, self.k)[i].view_as(mine))

    def train_step(self, runs: list) -> None:
        """One step of every run, each on its own next mini-batch, recorded in its trace."""
        xs, ys = zip(*(r.next_batch() for r in runs))
        losses, norms, correct = self.step(list(xs), list(ys))
        for i, r in enumerate(runs):
            r.record_step(losses[i], norms[i], correct[i])


def train_fused(
    cfgs: list,
    folders: list,
    data=None,
    *,
    deadline: float | None = None,
    interrupt_at_step: int | None = None,
    progress_every: float = 10.0,
) -> list[dict]:
    """Train runs whose configs differ only in seed and learning rate together, each into
    its own folder with the same tables, weights and checkpoints as ``train.train`` writes.

    Each member keeps its own initialisation, shuffles, augmentation and stopping rule, so
    it is the same computation as its separate run up to float rounding. A member that
    stops (ε reached, censored, diverged) leaves the pack and the rest go on without it;
    its NaNs, if it diverged, never share a kernel with the others again. Rows' wall times
    are the fused job's clock. Checkpoints are per member and interchangeable with those of
    separate runs; members whose checkpoints disagree on where they are train separately.
    """
    from . import train as T

    keys = [{k: v for k, v in c.to_dict().items() if k not in ("seed", "lr")} for c in cfgs]
    if any(k != keys[0] for k in keys):
        raise ValueError("train_fused: the configs must differ only in seed and learning rate")
    if data is None:
        data = load_dataset(
            cfgs[0].dataset, cfgs[0].data_root, cfgs[0].augment, cfgs[0].data_subset
        )
    # On the device once, shared: open_run's own move is then a no-op, where K members
    # would otherwise each hold a copy of the data set on the GPU.
    data = data.to(T.pick_device(cfgs[0].device))
    runs = [T.open_run(c, f, data) for c, f in zip(cfgs, folders)]
    if len({(r.epoch, r.pos, r.step) for r in runs}) > 1:
        T.log.warning("checkpoints at different points: training the runs one after another")
        return [T.train(c, f, data, deadline=deadline) for c, f in zip(cfgs, folders)]
    check_every = T.checks_every(runs[0].device)
    started = last_report = time.perf_counter()
    summaries: dict[int, dict] = {}
    active, packed = list(runs), []
    with T.stop_requests() as stop:
        while active:
            for r in active:
                if r.perm is None:
                    r.perm = torch.randperm(r.data.n_train, device=r.device, generator=r.generator)
            if (
                packed != active
            ):  # (re)pack only when a member has left: a compiled forward stays warm
                fused, packed = FusedTrainer.from_runs(active), list(active)
            while all(r.pos < r.steps_per_epoch and r.status is None for r in active):
                fused.train_step(active)
                for r in active:
                    if T.check_due(r, check_every):
                        r.check()
                stop.at(active[0].step, interrupt_at_step, deadline)
                if stop.signum is not None:
                    break
                if time.perf_counter() - last_report >= progress_every:
                    T.log.info(
                        "%d runs together: epoch %d step %d",
                        len(active),
                        active[0].epoch + 1,
                        active[0].step,
                    )
                    last_report = time.perf_counter()
            fused.store(active)
            for r in active:
                if r.status != "diverged" and (r.status is not None or r.pos == r.steps_per_epoch):
                    r.close_epoch(r.wall + time.perf_counter() - started)
                    if r.epoch % r.cfg.checkpoint_every == 0 and not r.finished():
                        T.save_checkpoint(r)
                if r.finished():
                    summaries[id(r)] = T.finish_run(r)
            active = [r for r in active if not r.finished()]
            if stop.signum is not None and active:
                for r in active:
                    r.wall += time.perf_counter() - started
                    T.save_checkpoint(r)
                raise T.Interrupted(
                    f"signal {stop.signum} at step {active[0].step}: "
                    f"{len(active)} checkpoints written"
                )
    return [summaries[id(r)] for r in runs]
