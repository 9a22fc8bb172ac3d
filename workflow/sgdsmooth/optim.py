"""SGD, SHB and NSHB exactly as docs/method.md §2.

All three are one recursion on a search direction d:

    d_t = a·g_t + β·d_{t−1},  d_{−1} = 0,   x_{t+1} = x_t − η·d_t

with (a, β) = (1, 0) for SGD, (1, β) for SHB and (1 − β, β) for NSHB. Writing them as one
rule keeps NSHB's first step right: d_0 = (1 − β)·g_0, which torch's
``SGD(momentum=β, dampening=β)`` gets wrong (it uses g_0). The direction is kept in the
optimizer state as ``direction`` so that the noise measurements can read it.
"""

from __future__ import annotations

import torch

from .names import OPTIMIZERS


def gradient_scale(name: str, beta: float) -> float:
    """The factor a in front of g_t for each optimizer."""
    if name == "nshb":
        return 1.0 - beta
    return 1.0


class Momentum(torch.optim.Optimizer):
    """d_t = a·g_t + β·d_{t−1}; x_{t+1} = x_t − η·d_t (no weight decay).

    ``lr`` is a number, or one tensor per parameter that broadcasts against it: the fused
    ensemble (``ensemble.FusedTrainer``) trains members with different η that way.
    """

    def __init__(
        self, params, lr: float | list[torch.Tensor], beta: float = 0.0, grad_scale: float = 1.0
    ):
        smallest = min(float(t.min()) for t in lr) if isinstance(lr, (list, tuple)) else lr
        if not smallest > 0:
            raise ValueError(f"lr must be > 0, got {smallest}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        super().__init__(params, dict(lr=lr, beta=beta, grad_scale=grad_scale))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            has_grad = [p.grad is not None for p in group["params"]]
            params = [p for p, g in zip(group["params"], has_grad) if g]
            if not params:
                continue
            grads = [p.grad for p in params]
            lr, beta, a = group["lr"], group["beta"], group["grad_scale"]
            if beta == 0.0 and a == 1.0:
                # Plain SGD: the direction is the gradient itself; no buffer to keep.
                _descend(params, grads, lr, has_grad)
                continue
            dirs = []
            for p in params:
                state = self.state[p]
                if "direction" not in state:
                    state["direction"] = torch.zeros_like(p)
                dirs.append(state["direction"])
            torch._foreach_mul_(dirs, beta)
            torch._foreach_add_(dirs, grads, alpha=a)
            _descend(params, dirs, lr, has_grad)
        return loss

    def directions(self) -> list[torch.Tensor]:
        """The current search direction d_t of every parameter (the gradient for SGD)."""
        out = []
        for group in self.param_groups:
            for p in group["params"]:
                d = self.state[p].get("direction") if p in self.state else None
                out.append(d if d is not None else p.grad)
        return out


def _descend(
    params: list[torch.Tensor], dirs: list[torch.Tensor], lr, has_grad: list[bool]
) -> None:
    """x ← x − η·d, with η a number or per-parameter tensors (of all the group's parameters)."""
    if isinstance(lr, (list, tuple)):
        torch._foreach_addcmul_(params, dirs, [t for t, g in zip(lr, has_grad) if g], value=-1.0)
    else:
        torch._foreach_add_(params, dirs, alpha=-lr)


def make_optimizer(
    name: str, params, lr: float | list[torch.Tensor], beta: float = 0.0
) -> Momentum:
    """Build SGD, SHB or NSHB by name. SGD ignores β (it is recorded as 0)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if name == "sgd":
        beta = 0.0
    return Momentum(params, lr=lr, beta=beta, grad_scale=gradient_scale(name, beta))


def coefficients(names: list[str], lrs: list[float], betas: list[float]) -> dict[str, list]:
    """Each member's (η, β, a) of the common recursion, for a population of runs whose
    optimizers may differ (SGD: β = 0, a = 1; SHB: a = 1; NSHB: a = 1 − β)."""
    betas = [0.0 if n == "sgd" else float(b) for n, b in zip(names, betas)]
    return {
        "lr": [float(v) for v in lrs],
        "beta": betas,
        "scale": [gradient_scale(n, b) for n, b in zip(names, betas)],
    }


@torch.no_grad()
def stacked_step(
    params: list[torch.Tensor],
    directions: list[torch.Tensor],
    lr: torch.Tensor,
    beta: torch.Tensor,
    scale: torch.Tensor,
) -> None:
    """One step of K runs at once: d ← β·d + a·g, x ← x − η·d, where every parameter and
    direction has a leading member axis and ``lr``, ``beta``, ``scale`` are (K,) tensors.

    For a member with β = 0 and a = 1 (SGD) this is d = g and x ← x − η·g, exactly, as long
    as d is finite; a member whose d is not has diverged and leaves its population."""
    for p, d in zip(params, directions):
        shape = (-1,) + (1,) * (p.dim() - 1)
        d.mul_(beta.view(shape)).addcmul_(p.grad, scale.view(shape))
        p.addcmul_(d, lr.view(shape), value=-1.0)
