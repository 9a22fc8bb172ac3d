"""K networks of one architecture computed as one: every weight gets a leading member axis.

A population of runs (``population.Population``) trains K copies of a network that differ
only in their weights. ``stack`` turns K such networks into one whose parameters and
buffers are the members' stacked along a new first dimension (row k is member k's, under
the member network's own names), by swapping three kinds of layer:

- ``Conv2d`` → ``StackedConv2d``: im2col (``F.unfold``) and one batched GEMM (``torch.bmm``)
  over the members, so the weight gradient is K ordinary GEMMs too. (The alternative, one
  grouped convolution with K·C channels, measured slower on a GPU than K separate runs:
  cuDNN's grouped weight-gradient kernel; ``bench/README.md``.)
- ``BatchNorm2d`` → ``StackedBatchNorm2d``: statistics per member and channel;
- ``Linear`` → ``StackedLinear``: one batched GEMM.

Activations are member-major: a batch of b examples per member travels as K·b rows, member
k's at rows k·b … (k+1)·b − 1, so pooling, ReLU, flattening and residual sums, which act on
each example alone, need no change. Nothing mixes members: each member's output, loss and
gradient are those of its own network. With K = 1 each layer calls the ordinary kernel
(``F.conv2d``, ``F.batch_norm``, ``F.linear``), so a population of one is the plain network.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def _stacked(tensors: list[torch.Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]))


class StackedConv2d(nn.Module):
    """K convolutions of one shape: weight (K, C_out, C_in, kh, kw), bias (K, C_out)."""

    def __init__(self, convs: list[nn.Conv2d]):
        super().__init__()
        c = convs[0]
        if c.groups != 1 or c.padding_mode != "zeros" or isinstance(c.padding, str):
            raise ValueError("StackedConv2d: plain convolutions only (groups 1, zero padding)")
        self.kernel_size, self.stride, self.padding, self.dilation = (
            c.kernel_size,
            c.stride,
            c.padding,
            c.dilation,
        )
        self.weight = _stacked([m.weight for m in convs])
        self.bias = _stacked([m.bias for m in convs]) if c.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        if k == 1:
            bias = None if self.bias is None else self.bias[0]
            weight = self.weight[0]
            if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
                weight = weight.contiguous(memory_format=torch.channels_last)  # NHWC kernels
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)
        n, _, h, w = x.shape
        b = n // k
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        ckk, length = cols.shape[1], cols.shape[2]
        # (K·b, C·kh·kw, L) → (K, b·L, C·kh·kw): one GEMM per member over all its positions.
        cols = cols.view(k, b, ckk, length).transpose(2, 3).reshape(k, b * length, ckk)
        weight = self.weight.reshape(k, -1, ckk).transpose(1, 2)  # (K, C·kh·kw, C_out)
        if self.bias is None:
            out = torch.bmm(cols, weight)
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), cols, weight)
        ho = h + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1
        wo = w + 2 * self.padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1
        ho, wo = ho // self.stride[0] + 1, wo // self.stride[1] + 1
        # (K, b·L, C_out) → (K·b, C_out, ho, wo): a view in channels-last memory order.
        return out.view(k, b, ho, wo, -1).permute(0, 1, 4, 2, 3).reshape(n, -1, ho, wo)


class StackedBatchNorm2d(nn.Module):
    """K BatchNorm2d layers: per-member statistics over that member's b examples."""

    def __init__(self, bns: list[nn.BatchNorm2d]):
        super().__init__()
        m = bns[0]
        if not (m.affine and m.track_running_stats and m.momentum is not None):
            raise ValueError("StackedBatchNorm2d: affine BatchNorm with running statistics only")
        self.eps, self.momentum = m.eps, m.momentum
        self.weight = _stacked([b.weight for b in bns])
        self.bias = _stacked([b.bias for b in bns])
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, torch.stack([getattr(b, name).clone() for b in bns]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        if self.training:
            self.num_batches_tracked.add_(1)
        args = (self.training, self.momentum, self.eps)
        if k == 1:
            return F.batch_norm(
                x, self.running_mean[0], self.running_var[0], self.weight[0], self.bias[0], *args
            )
        n, c, h, w = x.shape
        # (K·b, C, h, w) → (b, K·C, h·w): channel j of member k is channel k·C + j, so one
        # ordinary BatchNorm over K·C channels keeps every member's statistics apart.
        xt = x.reshape(k, n // k, c, h * w).transpose(0, 1).reshape(n // k, k * c, h * w)
        out = F.batch_norm(
            xt,
            self.running_mean.view(-1),
            self.running_var.view(-1),
            self.weight.view(-1),
            self.bias.view(-1),
            *args,
        )
        return out.view(n // k, k, c, h * w).transpose(0, 1).reshape(n, c, h, w)


class StackedLinear(nn.Module):
    """K linear maps: weight (K, out, in), bias (K, out); input (K·b, in) → (K·b, out)."""

    def __init__(self, linears: list[nn.Linear]):
        super().__init__()
        self.weight = _stacked([m.weight for m in linears])
        self.bias = _stacked([m.bias for m in linears]) if linears[0].bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        if k == 1:
            return F.linear(x, self.weight[0], None if self.bias is None else self.bias[0])
        xs = x.reshape(k, x.shape[0] // k, -1)
        wt = self.weight.transpose(1, 2)
        out = torch.bmm(xs, wt) if self.bias is None else torch.baddbmm(self.bias[:, None], xs, wt)
        return out.reshape(x.shape[0], -1)


_STACKED = {nn.Conv2d: StackedConv2d, nn.BatchNorm2d: StackedBatchNorm2d, nn.Linear: StackedLinear}


def stack(nets: list[nn.Module]) -> nn.Module:
    """One network computing all of ``nets`` (one architecture, any weights) on member-major
    batches; its state dict has the members' keys with a leading member axis."""
    stacked = copy.deepcopy(nets[0])
    names = [n for n, m in stacked.named_modules() if type(m) in _STACKED]
    for name in names:
        parts = [net.get_submodule(name) for net in nets]
        parent, _, leaf = name.rpartition(".")
        setattr(
            stacked.get_submodule(parent) if parent else stacked,
            leaf,
            _STACKED[type(parts[0])](parts),
        )
    left = [
        n
        for n, m in stacked.named_modules()
        if any(True for _ in m.parameters(recurse=False)) and type(m) not in _STACKED.values()
    ]
    if left:
        raise ValueError(f"stack: layers with weights it cannot stack: {left}")
    return stacked


@torch.no_grad()
def to_channels_last(net: nn.Module) -> nn.Module:
    """Each member's convolution kernels in channels-last memory order, in place: row k of a
    stacked kernel (K, C_out, C_in, kh, kw) is laid out as ``Module.to(memory_format=
    torch.channels_last)`` lays out member k's, which that call refuses for 5-d tensors.
    (A kernel's layout, not only its input's, decides a convolution's: an input of one
    channel is both NCHW and NHWC, and only NHWC kernels make the network run in NHWC.)"""
    for m in net.modules():
        if isinstance(m, StackedConv2d):
            w = m.weight.data
            m.weight.data = w.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    return net


def members(state: dict[str, torch.Tensor]) -> int:
    """K, read off a stacked state dict."""
    return next(iter(state.values())).shape[0]


def member_state(state: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Member k's state dict, in the member network's own format, from a stacked one."""
    return {name: t[k].clone() for name, t in state.items()}


def stacked_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The stacked state dict of members' state dicts (inverse of ``member_state``)."""
    return {name: torch.stack([s[name] for s in states]) for name in states[0]}
