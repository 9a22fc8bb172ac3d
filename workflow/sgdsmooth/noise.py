"""Measured gradient quantities: the full gradient, K², C², search-direction noise.

The article bounds these; here they are measured at frozen parameters x:

- ``full_gradient``: ∇f(x) of the mean loss over the whole (un-augmented) training set.
  K² is its squared norm.
- ``two_batch_variance``: McCandlish et al. (2018, App. A). For a uniformly drawn batch of
  B of the n examples, E‖G_B‖² = ‖G‖² + tr Σ · (n − B)/((n − 1)·B), with
  tr Σ = (1/n)Σ_i‖∇f_i − ∇f‖²; ‖G_B‖² averaged over several batches at two sizes gives
  unbiased estimates of tr Σ and ‖G‖² (the finite-population factor makes it exact).
  This is the number the tables call ``c2``: it needs no per-example gradients, so it works
  with BatchNorm in train mode, as the optimizer sees it.
- ``per_example_variance``: tr Σ from exact per-example gradients (torch.func), with
  BatchNorm in eval mode (a per-example gradient is undefined under batch statistics).
- ``direction_noise``: ‖d_t − ∇f(x_t)‖² for the optimizer's own search direction d_t
  (g_t for SGD, m_t for SHB, d_t for NSHB), over a few steps taken on a copy of the model
  and optimizer, so the run itself is not disturbed. η·sqrt(E‖ω‖²) is the measured
  counterpart of the degree of smoothing δ.

BatchNorm convention for ∇f: **eval** mode (running statistics), which makes f a fixed
function of the weights, independent of how the set is chunked. Mini-batch gradients use
**train** mode; BatchNorm's running statistics are restored after every measurement.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (outputs, targets) → mean loss


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def squared_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """‖v‖² of a vector stored as a list of tensors (0-dim tensor, float64)."""
    return torch.stack([t.double().pow(2).sum() for t in tensors]).sum()


@contextlib.contextmanager
def frozen_buffers(model: nn.Module, train_mode: bool):
    """Run in train or eval mode and put back the mode and every buffer (BN statistics)."""
    saved = {k: v.clone() for k, v in model.named_buffers()}
    was_training = model.training
    model.train(train_mode)
    try:
        yield
    finally:
        model.train(was_training)
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(saved[k])


def gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: LossFn = F.cross_entropy,
             chunk: int = 1000) -> list[torch.Tensor]:
    """Gradient of the mean loss over (x, y), accumulated over chunks, in the current mode."""
    params = _params(model)
    total = [torch.zeros_like(p) for p in params]
    n = x.shape[0]
    for start in range(0, n, chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        value = loss(model(xb), yb) * (xb.shape[0] / n)
        torch._foreach_add_(total, torch.autograd.grad(value, params))
    return total


def full_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: LossFn = F.cross_entropy,
                  chunk: int = 1000) -> list[torch.Tensor]:
    """∇f(x) over the whole set, BatchNorm in eval mode."""
    with frozen_buffers(model, train_mode=False):
        return gradient(model, x, y, loss, chunk)


def full_gradient_norm_sq(model: nn.Module, data, chunk: int = 1000) -> float:
    """‖∇f(x)‖² on the full un-augmented training set of ``data``: one sample of K²."""
    return float(squared_norm(full_gradient(model, data.normalize(data.train_x), data.train_y, chunk=chunk)))


def batch_gradient_sq_norms(model, x, y, batch_size: int, n_batches: int, generator: torch.Generator,
                            loss: LossFn = F.cross_entropy) -> torch.Tensor:
    """‖G_B‖² of ``n_batches`` independent uniform batches (no repeats within a batch),
    BatchNorm in train mode, its statistics restored."""
    out = []
    with frozen_buffers(model, train_mode=True):
        for _ in range(n_batches):
            idx = torch.randperm(x.shape[0], generator=generator, device=x.device)[:batch_size]
            out.append(squared_norm(gradient(model, x[idx], y[idx], loss, chunk=batch_size)))
    return torch.stack(out)


def two_batch_variance(model, x, y, small: int, big: int, n_batches: int, generator: torch.Generator,
                       loss: LossFn = F.cross_entropy) -> dict[str, float]:
    """Unbiased tr Σ and ‖G‖² from mini-batch gradient norms at two batch sizes, with the
    standard error of tr Σ from the spread of the batch norms."""
    if not 1 <= small < big <= x.shape[0]:
        raise ValueError(f"need 1 ≤ small < big ≤ n, got small={small}, big={big}, n={x.shape[0]}")
    n = x.shape[0]
    s_small, s_big = ((n - b) / ((n - 1) * b) for b in (small, big))
    e_small = batch_gradient_sq_norms(model, x, y, small, n_batches, generator, loss)
    e_big = batch_gradient_sq_norms(model, x, y, big, n_batches, generator, loss)
    trace = float((e_small.mean() - e_big.mean()) / (s_small - s_big))
    g2 = float(e_small.mean()) - trace * s_small
    var = (e_small.var() + e_big.var()) / n_batches if n_batches > 1 else torch.tensor(math.nan)
    return {"trace": trace, "grad_sq": g2, "trace_stderr": float(var.sqrt() / (s_small - s_big))}


def per_example_variance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: LossFn = F.cross_entropy,
                         chunk: int = 256) -> float:
    """(1/n)Σ_i‖∇f_i − ∇f‖² from exact per-example gradients, BatchNorm in eval mode."""
    from torch.func import functional_call, grad, vmap

    names = [k for k, p in model.named_parameters() if p.requires_grad]
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def one(p, xi, yi):
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return loss(out, yi.unsqueeze(0))

    per_example = vmap(grad(one), in_dims=(None, 0, 0))
    total_sq = torch.zeros((), dtype=torch.float64, device=x.device)
    total = {k: torch.zeros_like(params[k], dtype=torch.float64) for k in names}
    n = x.shape[0]
    with frozen_buffers(model, train_mode=False):
        for start in range(0, n, chunk):
            g = per_example(params, x[start : start + chunk], y[start : start + chunk])
            for k in names:
                gk = g[k].double()
                total_sq += gk.pow(2).sum()
                total[k] += gk.sum(0)
    mean_sq = squared_norm([t / n for t in total.values()])
    return float(total_sq / n - mean_sq)


def direction_noise(model: nn.Module, optimizer, x, y, batch_size: int, steps: int, generator: torch.Generator,
                    loss: LossFn = F.cross_entropy, chunk: int = 1000, first_full: list | None = None) -> float:
    """Mean over ``steps`` steps of ‖d_t − ∇f(x_t)‖², d_t the optimizer's search direction
    after its update at x_t, taken on copies of the model and optimizer. ``first_full`` is
    ∇f at the starting point when the caller has it already (it is the costly part)."""
    twin = copy.deepcopy(model)
    group = optimizer.param_groups[0]
    twin_opt = type(optimizer)(_params(twin), lr=group["lr"], beta=group["beta"], grad_scale=group["grad_scale"])
    # load_state_dict keeps same-device tensors as they are: copy, or the twin steps the run.
    twin_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    total = 0.0
    for step in range(steps):
        full = first_full if step == 0 and first_full is not None else full_gradient(twin, x, y, loss, chunk)
        idx = torch.randperm(x.shape[0], generator=generator, device=x.device)[:batch_size]
        with frozen_buffers(twin, train_mode=True):  # the run's BN statistics are not advanced
            twin_opt.zero_grad(set_to_none=True)
            loss(twin(x[idx]), y[idx]).backward()
        twin_opt.step()  # the direction d_t now holds a·g_t + β·d_{t−1}
        dirs = twin_opt.directions()
        total += float(squared_norm([d - f for d, f in zip(dirs, full)]))
    return total / steps


def measure(model: nn.Module, optimizer, data, lr: float, batch_size: int, seed: int, *,
            small: int, big: int, n_batches: int, direction_steps: int, per_example: int,
            chunk: int = 1000) -> dict[str, float]:
    """Every noise quantity at the model's current point (one row of the noise table)."""
    gen = torch.Generator(device=data.train_x.device).manual_seed(10_000 + seed)
    x, y = data.normalize(data.train_x), data.train_y
    two = two_batch_variance(model, x, y, min(small, x.shape[0] - 1), min(big, x.shape[0]), n_batches, gen)
    full = full_gradient(model, x, y, chunk=chunk)
    k2 = float(squared_norm(full))
    omega = direction_noise(model, optimizer, x, y, batch_size, direction_steps, gen, chunk=chunk, first_full=full)
    exact = per_example_variance(model, x[:per_example], y[:per_example]) if per_example else math.nan
    return {
        "c2": two["trace"], "c2_stderr": two["trace_stderr"], "c2_per_example": exact, "k2": k2,
        "direction_noise_sq": omega, "delta_empirical": lr * math.sqrt(max(omega, 0.0)),
        "noise_scale": two["trace"] / two["grad_sq"] if two["grad_sq"] > 0 else math.nan,
    }
