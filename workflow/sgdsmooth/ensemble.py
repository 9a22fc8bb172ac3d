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
packed parameters is K separate steps. Every packed parameter is member-major: viewed as
(K, −1), row k is member k (``member_view``), which gives per-member gradient norms.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class GroupedLinear(nn.Module):
    """K independent linear maps: input (b, K·in) → output (b, K, out)."""

    def __init__(self, members: list[nn.Linear]):
        super().__init__()
        self.k = len(members)
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in members]))  # (K, out, in)
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in members]))  # (K, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], self.k, -1)
        return torch.einsum("bki,koi->bko", x, self.weight) + self.bias


def _pack_conv(members: list[nn.Conv2d]) -> nn.Conv2d:
    m, k = members[0], len(members)
    conv = nn.Conv2d(m.in_channels * k, m.out_channels * k, m.kernel_size, m.stride, m.padding,
                     m.dilation, m.groups * k, m.bias is not None, m.padding_mode).to(m.weight)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([c.weight for c in members]))
        if m.bias is not None:
            conv.bias.copy_(torch.cat([c.bias for c in members]))
    return conv


def _pack_bn(members: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    m = members[0]
    bn = nn.BatchNorm2d(m.num_features * len(members), m.eps, m.momentum, m.affine, m.track_running_stats)
    bn = bn.to(m.running_mean)  # the members' dtype and device
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(torch.cat([getattr(b, name) for b in members]))
        bn.num_batches_tracked.copy_(m.num_batches_tracked)
    return bn


def pack(models: list[nn.Module]) -> nn.Module:
    """One network computing all ``models`` (same architecture, any weights)."""
    packed = copy.deepcopy(models[0])
    names = [n for n, mod in packed.named_modules() if isinstance(mod, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    for name in names:
        parts = [m.get_submodule(name) for m in models]
        kind = type(parts[0])
        new = _pack_conv(parts) if kind is nn.Conv2d else _pack_bn(parts) if kind is nn.BatchNorm2d else GroupedLinear(parts)
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
            mine[key] = t.clone() if key.endswith("num_batches_tracked") else member_view(t, k)[i].reshape(ref.shape).clone()
        member = copy.deepcopy(template)
        member.load_state_dict(mine)
        out.append(member)
    return out


def fused_input(batches: list[torch.Tensor]) -> torch.Tensor:
    """Member batches (b, C, H, W) each → one input (b, K·C, H, W), member k in group k."""
    return torch.cat(batches, dim=1)


class FusedTrainer:
    """One optimizer step for K runs at once: the members' batches in, per-member loss and
    gradient norm out (the quantities a run records each step)."""

    def __init__(self, models: list[nn.Module], optimizer: str, lr: float, beta: float = 0.0):
        from .optim import make_optimizer

        self.k = len(models)
        self.model = pack(models)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(optimizer, self.params, lr, beta)

    def step(self, xs: list[torch.Tensor], ys: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(fused_input(xs))
        losses = torch.stack([F.cross_entropy(out[:, i], y) for i, y in enumerate(ys)])
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        norms = member_grad_norms(self.params, self.k)
        self.optimizer.step()
        return losses.detach(), norms.detach()
