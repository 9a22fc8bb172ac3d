"""Adaptive and plain sharpness (Andriushchenko et al., 2023), worst case and average case.

    S_max^ρ(w, c) = E_batch[ max_{‖δ ⊙ c⁻¹‖_p ≤ ρ} L(w + δ) − L(w) ],
                    c = |w| (adaptive) or c = 1 (plain)

Every network is measured both ways, with the same seed and batches: the authors' sharpness
script has an ``--adaptive`` flag that is off by default, and no published command says
which variant they used (plain values come out 25–40× larger than adaptive ones). The
config key ``sharpness.adaptive`` only picks which of the two Figure 8 draws first.

The maximisation runs in the rescaled variable u = δ / c, where the constraint is the plain
ball ‖u‖_p ≤ ρ: its projection is exact and cheap (clipping for p = ∞, rescaling for p = 2),
and a weight that is exactly zero simply cannot move (δ = c·u = 0) instead of dividing by
zero. The ascent is Auto-PGD (Croce & Hein, 2020): sign (p = ∞) or normalised (p = 2)
gradient steps starting at 2ρ, momentum 0.75, the step halved at its checkpoints when
progress stalls (restarting from the best point), and the best point kept.

Numerics: ρ = 2·10⁻⁴ moves the loss by about 10⁻⁶, so the computation runs in fp32 with
TF32 off and no autocast; perturbed weights are always written as w₀ + δ and restored by
copying w₀, never by subtracting δ. BatchNorm is in eval mode; its running statistics are
buffers and are not perturbed; every trainable parameter is.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[], torch.Tensor]


@dataclass
class SharpnessResult:
    worst: float  # the loss increase at the best perturbation found
    average: float  # the mean loss increase under random δ = ρ·c ⊙ N(0, I)
    u: list[torch.Tensor]  # the best perturbation of the last batch, in the rescaled variable


@contextlib.contextmanager
def exact_fp32():
    """TF32 off for matmuls and convolutions while the block runs."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _norm(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([t.norm() for t in ts]))


def project(u: list[torch.Tensor], rho: float, p: str) -> list[torch.Tensor]:
    """Exact projection onto {‖u‖_p ≤ ρ} for p ∈ {'inf', '2'} (in place; returns u)."""
    if p == "inf":
        for t in u:
            t.clamp_(-rho, rho)
    else:
        scale = torch.clamp(rho / (_norm(u) + 1e-30), max=1.0)
        torch._foreach_mul_(u, scale)
    return u


def _direction(g: list[torch.Tensor], p: str) -> list[torch.Tensor]:
    if p == "inf":
        return [t.sign() for t in g]
    n = _norm(g) + 1e-30
    return [t / n for t in g]


def checkpoints(iterations: int) -> list[int]:
    """Auto-PGD's step-size checkpoints: p₀ = 0, p₁ = 0.22,
    p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)."""
    ps = [0.0, 0.22]
    while ps[-1] < 1:
        ps.append(ps[-1] + max(ps[-1] - ps[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * iterations, 9)) for q in ps if 0 < q <= 1})


def worst_case(
    loss_fn: LossFn,
    params: list[torch.Tensor],
    scale: list[torch.Tensor],
    rho: float,
    p: str = "inf",
    iterations: int = 20,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[float, list[torch.Tensor]]:
    """max over ‖u‖_p ≤ ρ of loss(w₀ + scale ⊙ u) − loss(w₀), by Auto-PGD.

    ``loss_fn`` evaluates the loss at the current values of ``params``; the parameters are
    left exactly at w₀ afterwards.
    """
    if p not in ("inf", "2"):
        raise ValueError(f"p must be 'inf' or '2', got {p!r}")
    w0 = [t.detach().clone() for t in params]

    def evaluate(u):
        with torch.no_grad():
            for t, w, c, du in zip(params, w0, scale, u):
                t.copy_(w + c * du)
        with torch.enable_grad():
            loss = loss_fn()
            grads = torch.autograd.grad(loss, params)
        return float(loss.detach()), [c * g for c, g in zip(scale, grads)]

    try:
        base, _ = evaluate([torch.zeros_like(w) for w in w0])
        if random_start:
            if p == "inf":
                u = [
                    (torch.rand(w.shape, generator=generator, device=w.device) * 2 - 1) * rho
                    for w in w0
                ]
            else:
                u = [torch.randn(w.shape, generator=generator, device=w.device) for w in w0]
                u = [t * (rho / _norm(u)) for t in u]
        else:
            u = [torch.zeros_like(w) for w in w0]
        step, alpha = 2.0 * rho, 0.75
        f, g = evaluate(u)
        best_f, best_u, best_g = f, [t.clone() for t in u], g
        u_prev = [t.clone() for t in u]
        u = project([a + step * d for a, d in zip(u, _direction(g, p))], rho, p)
        marks = checkpoints(iterations)
        last_mark, successes, step_at_mark, best_at_mark = 0, 0, step, best_f
        for k in range(1, iterations + 1):
            f_new, g_new = evaluate(u)
            if f_new > f:
                successes += 1
            if f_new > best_f:
                best_f, best_u, best_g = f_new, [t.clone() for t in u], g_new
            f, g = f_new, g_new
            if k in marks:
                stalled = successes < 0.75 * (k - last_mark)
                unchanged = step == step_at_mark and best_f == best_at_mark
                step_at_mark, best_at_mark = step, best_f
                if stalled or unchanged:
                    step /= 2.0
                    u, g, f = [t.clone() for t in best_u], best_g, best_f
                    u_prev = [t.clone() for t in u]
                last_mark, successes = k, 0
            if k == iterations:
                break
            z = project([a + step * d for a, d in zip(u, _direction(g, p))], rho, p)
            nxt = [a + alpha * (zz - a) + (1 - alpha) * (a - b) for a, zz, b in zip(u, z, u_prev)]
            u_prev, u = u, project(nxt, rho, p)
        return best_f - base, best_u
    finally:
        with torch.no_grad():
            for t, w in zip(params, w0):
                t.copy_(w)


def average_case(
    loss_fn: LossFn, params, scale, rho: float, draws: int = 8, generator=None
) -> float:
    """Mean of loss(w₀ + ρ·scale ⊙ ξ) − loss(w₀) over Gaussian ξ ~ N(0, I)."""
    w0 = [t.detach().clone() for t in params]
    try:
        with torch.no_grad():
            base = float(loss_fn())
            total = 0.0
            for _ in range(draws):
                for t, w, c in zip(params, w0, scale):
                    t.copy_(
                        w + rho * c * torch.randn(w.shape, generator=generator, device=w.device)
                    )
                total += float(loss_fn()) - base
        return total / draws
    finally:
        with torch.no_grad():
            for t, w in zip(params, w0):
                t.copy_(w)


def adaptive_sharpness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rho: float = 2e-4,
    p: str = "inf",
    iterations: int = 20,
    batch_size: int = 128,
    random_start: bool = False,
    adaptive: bool = True,
    seed: int = 0,
) -> SharpnessResult:
    """Worst-case and average adaptive sharpness of ``model`` on (x, y), averaged over
    batches of ``batch_size`` with one maximisation per batch; BatchNorm in eval mode.
    ``adaptive=False`` gives plain sharpness (c = 1) for comparison."""
    was_training = model.training
    model.eval()
    params = [t for t in model.parameters() if t.requires_grad]
    scale = [t.detach().abs() if adaptive else torch.ones_like(t) for t in params]
    gen = torch.Generator(device=x.device).manual_seed(seed)
    worst, avg, n, u = 0.0, 0.0, 0, []
    try:
        with exact_fp32():
            for start in range(0, x.shape[0], batch_size):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]

                def loss_fn(xb=xb, yb=yb):
                    return F.cross_entropy(model(xb).float(), yb)

                w, u = worst_case(loss_fn, params, scale, rho, p, iterations, random_start, gen)
                worst += w * len(xb)
                avg += average_case(loss_fn, params, scale, rho, generator=gen) * len(xb)
                n += len(xb)
    finally:
        model.train(was_training)
    return SharpnessResult(worst / n, avg / n, u)


def measure_runs(
    run_tables: list[str],
    weights: list[str],
    out_tables: list[str],
    *,
    rho: float,
    p: str,
    iterations: int,
    n_examples: int,
    batch_size: int,
    random_start: bool = False,
) -> None:
    """Sharpness of trained runs: one ``sharpness_run`` table per run, on the first
    ``n_examples`` training examples without augmentation (the reference protocol), both
    adaptive (``sharpness``, ``average_sharpness``; c = |w|) and plain (``sharpness_plain``,
    ``average_sharpness_plain``; c = 1), each with the run's seed on the same batches."""
    import pandas as pd

    from .collect import run_identity
    from .data import load_dataset
    from .models import make_model
    from .tables import read_metadata, write_table
    from .training import pick_device

    data = None
    for table, weight_file, out in zip(run_tables, weights, out_tables):
        meta = read_metadata(table)
        cfg = meta["config"]
        if meta["summary"]["status"] != "ok":  # a diverged network has no sharpness to speak of
            row = run_identity(meta) | {
                "rho": rho,
                "p": p,
                "sharpness": math.nan,
                "average_sharpness": math.nan,
                "sharpness_plain": math.nan,
                "average_sharpness_plain": math.nan,
            }
            write_table(
                pd.DataFrame([row]),
                out,
                "sharpness_run",
                {"config": cfg, "status": meta["summary"]["status"]},
            )
            continue
        device = pick_device(cfg["device"])
        if data is None:
            data = load_dataset(cfg["dataset"], cfg["data_root"], subset=cfg.get("data_subset")).to(
                device
            )
        model = make_model(cfg["model"], data.num_classes, data.in_channels).to(device)
        model.load_state_dict(torch.load(weight_file, map_location=device))
        x = data.normalize(data.train_x[:n_examples])
        y = data.train_y[:n_examples]
        res = adaptive_sharpness(
            model, x, y, rho, p, iterations, batch_size, random_start, seed=cfg["seed"]
        )
        plain = adaptive_sharpness(
            model,
            x,
            y,
            rho,
            p,
            iterations,
            batch_size,
            random_start,
            adaptive=False,
            seed=cfg["seed"],
        )
        row = run_identity(meta) | {
            "rho": rho,
            "p": p,
            "sharpness": res.worst,
            "average_sharpness": res.average,
            "sharpness_plain": plain.worst,
            "average_sharpness_plain": plain.average,
        }
        write_table(
            pd.DataFrame([row]),
            out,
            "sharpness_run",
            {
                "config": cfg,
                "iterations": iterations,
                "n_examples": n_examples,
                "batch_size": batch_size,
            },
        )
