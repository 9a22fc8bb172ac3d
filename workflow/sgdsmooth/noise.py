"""Measured gradient quantities, all of ONE function: the one the optimizer descends.

The function. A run at batch size b steps along mini-batch gradients taken with BatchNorm in
train mode (each batch normalised by its own statistics) on augmented examples where the data
set augments. What it descends is therefore

    F_b(x) = E_B[ ℓ(x; B) ],   B a uniform batch of b training examples, train-mode BN,

and every quantity here is of F_b, with the run's own b (``FUNCTION`` names it in the tables):

- ``full_gradient``: ∇F_b, as the size-weighted mean of the train-mode gradients of one random
  partition of the training set into chunks of b (the last chunk holds the remainder; a
  remainder of one example joins the chunk before it). Without BatchNorm and augmentation
  this is ∇f exactly. With them each full chunk's gradient is a draw of ∇F_b, and their mean
  has a small error of its own (about C²/n in squared norm), plus a bias from the remainder
  chunk, normalised by its own statistics, of weight r/n < b/n. K² is its squared norm.
- ``batch_noise`` (C²): the variance of the run's own stochastic gradient, scaled to one
  example: C² = b·(n − 1)/(n − b) · mean_j ‖g_{B_j} − ∇F_b‖² over independent batches B_j.
  The factor undoes sampling without replacement, so that without BatchNorm and augmentation
  C² is exactly tr Σ = (1/n)Σ_i‖∇f_i − ∇f‖², the C² of the article's E‖g − ∇f‖² ≤ C²/b. (With
  augmentation the factor also scales the augmentation's share of the variance, and ∇F_b's own
  error adds about C²/n: both matter only where b is a sizeable share of n.) It is McCandlish
  et al.'s two-batch-size estimator with the sizes b and n, in its paired form: each batch
  is compared with ∇F_b, so an estimate is never negative and its standard error comes from
  the spread of the batches. (Two other batch sizes would measure two other functions under
  train-mode BatchNorm.)
- ``per_example_noise``: tr Σ from per-example gradients ψ_i = ∇ℓ_i inside the same
  train-mode chunks (each ℓ_i uses its chunk's statistics, which depend on x), so that a
  chunk's gradient is exactly the mean of its ψ_i: C²_pe = mean_i ‖ψ_i − ∇F_b‖². Without
  BatchNorm it equals C²; with it the two differ by how BatchNorm couples a batch's examples,
  which is what their ratio measures.
- ``direction_noise``: ‖d_t − ∇F_b(x_t)‖² for the optimizer's own search direction d_t
  (g_t for SGD, m_t for SHB, d_t for NSHB), over a few steps taken on a copy of the model
  and optimizer, so the run itself is not disturbed. η·sqrt(E‖ω‖²) is the measured
  counterpart of the degree of smoothing δ.

BatchNorm's running statistics (and the mode) are restored after every measurement, and the
measurements draw from their own generator, so a measured run trains exactly as an
unmeasured one.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[..., torch.Tensor]  # (outputs, targets[, reduction]) → loss

BN_MODE = "train"  # every gradient here: BatchNorm normalises by the batch's own statistics


def function_name(batch_size: int, augmented: bool) -> str:
    """The function every measured gradient quantity is of, in words (tables and paper)."""
    aug = "augmented" if augmented else "un-augmented"
    return (
        f"F_b: mean loss of a uniform batch of b = {batch_size}, "
        f"BatchNorm in train mode, {aug} examples"
    )


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def squared_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """‖v‖² of a vector stored as a list of tensors (0-dim tensor, float64)."""
    return torch.stack([t.double().pow(2).sum() for t in tensors]).sum()


def distance_sq(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """‖a − b‖² of two vectors stored as lists of tensors."""
    return float(squared_norm([u - v for u, v in zip(a, b)]))


@contextlib.contextmanager
def frozen_buffers(model: nn.Module, train_mode: bool = True):
    """Run in train (default) or eval mode and put back the mode and every buffer
    (BN statistics)."""
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


def _batch(
    data, idx: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Examples ``idx`` as the optimizer sees them (``data.train_batch``: augmented where the
    set augments, normalised); a (x, y) pair of tensors stands for un-augmented data."""
    if isinstance(data, tuple):
        return data[0][idx], data[1][idx]
    return data.train_batch(idx, generator)


def _size(data) -> int:
    return data[0].shape[0] if isinstance(data, tuple) else data.n_train


def _device(data) -> torch.device:
    return data[0].device if isinstance(data, tuple) else data.train_x.device


def _uniform_batch(
    data, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniform batch of ``batch_size`` distinct training examples, as the optimizer sees it."""
    idx = torch.randperm(_size(data), generator=generator, device=_device(data))[:batch_size]
    return _batch(data, idx, generator)


def batch_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: LossFn = F.cross_entropy
) -> list[torch.Tensor]:
    """The mini-batch gradient g_B of the mean loss on (x, y), BatchNorm in train mode."""
    with frozen_buffers(model):
        return list(torch.autograd.grad(loss(model(x), y), _params(model)))


def chunks(n: int, batch_size: int, generator: torch.Generator, device=None) -> list[torch.Tensor]:
    """One random partition of range(n) into chunks of ``batch_size``, the last holding the
    remainder (a remainder of one joins the chunk before it: train-mode BatchNorm needs two)."""
    perm = torch.randperm(n, generator=generator, device=device)
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return [perm[a:z] for a, z in zip(bounds[:-1], bounds[1:])]


def _ghost_forward(bn: nn.BatchNorm2d, chunk: int, x: torch.Tensor) -> torch.Tensor:
    """Train-mode BatchNorm of each consecutive block of ``chunk`` examples by its own
    statistics: the blocks become channel groups of one batch of ``chunk``, so one call
    normalises them all (running statistics untouched)."""
    n, c, h, w = x.shape
    k = n // chunk
    z = x.reshape(k, chunk, c, h, w).transpose(0, 1).reshape(chunk, k * c, h, w)
    weight = bn.weight.repeat(k) if bn.weight is not None else None
    bias = bn.bias.repeat(k) if bn.bias is not None else None
    z = F.batch_norm(z, None, None, weight, bias, training=True, eps=bn.eps)
    return z.reshape(chunk, k, c, h, w).transpose(0, 1).reshape(n, c, h, w)


@contextlib.contextmanager
def ghost_batchnorm(model: nn.Module, chunk: int):
    """While the block runs, every BatchNorm2d normalises each block of ``chunk`` consecutive
    examples by that block's statistics, so that one pass over k·chunk examples computes k
    train-mode batches of ``chunk`` (their losses and, summed, their gradients) at once."""
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in layers:
        m.forward = functools.partial(_ghost_forward, m, chunk)
    try:
        yield
    finally:
        for m in layers:
            del m.forward  # back to the class's own forward


def full_gradient(
    model: nn.Module,
    data,
    batch_size: int,
    generator: torch.Generator,
    loss: LossFn = F.cross_entropy,
    pass_size: int = 1024,
) -> list[torch.Tensor]:
    """∇F_b: the train-mode gradients of one random partition into chunks of b, weighted by
    chunk size. ``data`` is an ImageData (augmented as in training) or an (x, y) pair. Chunks
    of b travel ``pass_size // b`` at a time through one ghost-BatchNorm pass (the same sum)."""
    n = _size(data)
    params = _params(model)
    total = [torch.zeros_like(p) for p in params]
    parts = chunks(n, batch_size, generator, _device(data))
    full = [p for p in parts if len(p) == batch_size]
    per_pass = max(1, pass_size // batch_size)
    for start in range(0, len(full), per_pass):
        idx = torch.cat(full[start : start + per_pass])
        x, y = _batch(data, idx, generator)
        with frozen_buffers(model), ghost_batchnorm(model, batch_size):
            value = loss(model(x), y) * (len(idx) / n)  # = Σ_chunks (b/n)·(mean loss of the chunk)
            torch._foreach_add_(total, torch.autograd.grad(value, params))
    for idx in parts[len(full) :]:  # the remainder, a chunk of its own size
        x, y = _batch(data, idx, generator)
        torch._foreach_add_(total, [g * (len(idx) / n) for g in batch_gradient(model, x, y, loss)])
    return total


def full_gradient_norm_sq(model: nn.Module, data, batch_size: int, seed: int) -> float:
    """K² = ‖∇F_b(x)‖² at the model's point, from its own generator seeded with ``seed``."""
    gen = torch.Generator(device=_device(data)).manual_seed(seed)
    return float(squared_norm(full_gradient(model, data, batch_size, gen)))


def batch_noise(
    model: nn.Module,
    data,
    batch_size: int,
    n_batches: int,
    generator: torch.Generator,
    full: list[torch.Tensor],
    loss: LossFn = F.cross_entropy,
) -> dict[str, float]:
    """C² = b(n − 1)/(n − b)·mean_j‖g_{B_j} − ∇F_b‖² over ``n_batches`` uniform batches (no
    repeats within a batch), with its standard error from the spread of the batches."""
    n, b = _size(data), batch_size
    if not 1 <= b < n or n_batches < 2:
        raise ValueError(
            f"need 1 ≤ b < n and at least 2 batches, got b={b}, n={n}, batches={n_batches}"
        )
    scale = b * (n - 1) / (n - b)
    draws = []
    for _ in range(n_batches):
        draws.append(
            scale
            * distance_sq(batch_gradient(model, *_uniform_batch(data, b, generator), loss), full)
        )
    d = torch.tensor(draws, dtype=torch.float64)
    return {
        "c2": float(d.mean()),
        "c2_stderr": float(d.std() / math.sqrt(n_batches)),
        "c2_batches": n_batches,
    }


def per_example_noise(
    model: nn.Module,
    data,
    batch_size: int,
    n_examples: int,
    generator: torch.Generator,
    full: list[torch.Tensor],
    loss: LossFn = F.cross_entropy,
) -> dict[str, float]:
    """C²_pe = mean_i‖ψ_i − ∇F_b‖² over ``n_examples`` examples, ψ_i = ∇ℓ_i with ℓ_i taken
    inside a random train-mode chunk of b (its statistics, and their dependence on x, kept)."""
    n = _size(data)
    params = _params(model)
    draws = []
    with frozen_buffers(model):
        for idx in chunks(n, batch_size, generator, _device(data)):
            x, y = _batch(data, idx, generator)
            losses = loss(model(x), y, reduction="none")
            rows = min(len(idx), n_examples - len(draws))
            for i in range(rows):
                psi = torch.autograd.grad(losses[i], params, retain_graph=i < rows - 1)
                draws.append(distance_sq(psi, full))
            if len(draws) >= n_examples:
                break
    d = torch.tensor(draws, dtype=torch.float64)
    stderr = float(d.std() / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return {
        "c2_per_example": float(d.mean()),
        "c2_per_example_stderr": stderr,
        "n_per_example": len(d),
    }


def direction_noise(
    model: nn.Module,
    optimizer,
    data,
    batch_size: int,
    steps: int,
    generator: torch.Generator,
    loss: LossFn = F.cross_entropy,
    first_full: list | None = None,
) -> float:
    """Mean over ``steps`` steps of ‖d_t − ∇F_b(x_t)‖², d_t the optimizer's search direction
    after its update at x_t, taken on copies of the model and optimizer. ``first_full`` is
    ∇F_b at the starting point when the caller has it already (it is the costly part)."""
    twin = copy.deepcopy(model)
    group = optimizer.param_groups[0]
    twin_opt = type(optimizer)(
        _params(twin), lr=group["lr"], beta=group["beta"], grad_scale=group["grad_scale"]
    )
    # load_state_dict keeps same-device tensors as they are: copy, or the twin steps the run.
    twin_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    total = 0.0
    for step in range(steps):
        full = (
            first_full
            if step == 0 and first_full is not None
            else full_gradient(twin, data, batch_size, generator, loss)
        )
        x, y = _uniform_batch(data, batch_size, generator)
        with frozen_buffers(twin):  # the run's BN statistics are not advanced
            twin_opt.zero_grad(set_to_none=True)
            loss(twin(x), y).backward()
        twin_opt.step()  # the direction d_t now holds a·g_t + β·d_{t−1}
        total += distance_sq(twin_opt.directions(), full)
    return total / steps


def measure(
    model: nn.Module,
    optimizer,
    data,
    lr: float,
    batch_size: int,
    seed: int,
    *,
    n_batches: int,
    direction_steps: int,
    per_example: int,
) -> dict[str, float]:
    """Every noise quantity at the model's current point (one row of the noise table), all of
    F_b with the run's batch size b."""
    gen = torch.Generator(device=_device(data)).manual_seed(10_000 + seed)
    b = min(batch_size, _size(data) - 1)  # b = n has no batch noise to measure
    full = full_gradient(model, data, b, gen)
    k2 = float(squared_norm(full))
    c2 = batch_noise(model, data, b, n_batches, gen, full)
    pe = (
        per_example_noise(model, data, b, per_example, gen, full)
        if per_example
        else {"c2_per_example": math.nan, "c2_per_example_stderr": math.nan, "n_per_example": 0}
    )
    omega = direction_noise(
        model, optimizer, data, batch_size, direction_steps, gen, first_full=full
    )
    return {
        **c2,
        **pe,
        "k2": k2,
        "direction_noise_sq": omega,
        "delta_empirical": lr * math.sqrt(omega),
        "noise_scale": c2["c2"] / k2 if k2 > 0 else math.nan,
        "bn_mode": BN_MODE,
        "augmented": bool(getattr(data, "augment", False)),
    }
