"""Closed-form quantities of the article: δ (eqs. 12–14), C² bounds (Thm. 4.4), Rastrigin.

Every function is vectorised over numpy arrays so that tables can call it on columns.
"""

from __future__ import annotations

import numpy as np

from .names import OPTIMIZERS


def _check_optimizer(optimizer: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")


def beta_hat(beta):
    """β̂ = β(β² − β + 1)/(1 − β)², the SHB amplification factor of eq. 13."""
    beta = np.asarray(beta, dtype=float)
    return beta * (beta**2 - beta + 1.0) / (1.0 - beta) ** 2


def degree_of_smoothing(optimizer: str, lr, batch_size, c2, beta=0.0, k2=0.0):
    """δ of eqs. 12–14.

    SGD:  η·sqrt(C²/b)
    SHB:  η·sqrt((1 + β̂)·C²/b + β̂·K²)
    NSHB: η·sqrt(C²/((1 − β)·b))
    """
    _check_optimizer(optimizer)
    lr, b, c2, beta, k2 = (np.asarray(v, dtype=float) for v in (lr, batch_size, c2, beta, k2))
    if optimizer == "sgd":
        return lr * np.sqrt(c2 / b)
    if optimizer == "shb":
        bh = beta_hat(beta)
        return lr * np.sqrt((1.0 + bh) * c2 / b + bh * k2)
    return lr * np.sqrt(c2 / ((1.0 - beta) * b))


def c2_upper_bound(optimizer: str, critical_batch_size, epsilon, lr, beta=0.0):
    """Theorem 4.4 read backwards: the C² that a measured b* implies (an upper bound).

    SGD:  b*ε²/η
    SHB:  b*ε²β(1 − β)²/(η(β² − β + 1))
    NSHB: b*ε²(1 − β)/η
    """
    _check_optimizer(optimizer)
    b, eps, lr, beta = (
        np.asarray(v, dtype=float) for v in (critical_batch_size, epsilon, lr, beta)
    )
    base = b * eps**2 / lr
    if optimizer == "sgd":
        return base
    if optimizer == "shb":
        return base * beta * (1.0 - beta) ** 2 / (beta**2 - beta + 1.0)
    return base * (1.0 - beta)


def bstar_lower_bound(optimizer: str, c2, epsilon, lr, beta=0.0):
    """Theorem 4.4 read forwards: the b* that a variance bound C² implies (a lower bound on
    b*), the inverse of :func:`c2_upper_bound`.

    SGD:  ηC²/ε²
    SHB:  ηC²(β² − β + 1)/(ε²β(1 − β)²)
    NSHB: ηC²/(ε²(1 − β))
    """
    _check_optimizer(optimizer)
    c2, eps, lr, beta = (np.asarray(v, dtype=float) for v in (c2, epsilon, lr, beta))
    base = lr * c2 / eps**2
    if optimizer == "sgd":
        return base
    if optimizer == "shb":
        return base * (beta**2 - beta + 1.0) / (beta * (1.0 - beta) ** 2)
    return base / (1.0 - beta)


def floor_share(batch_size, c2, beta, k2):
    """The share of δ_SHB (eq. 13) at batch size b that its b-independent floor η·sqrt(β̂K²)
    makes up: sqrt(β̂K² / ((1 + β̂)C²/b + β̂K²)); η cancels."""
    b, c2, k2 = (np.asarray(v, dtype=float) for v in (batch_size, c2, k2))
    bh = beta_hat(beta)
    return np.sqrt(bh * k2 / ((1.0 + bh) * c2 / b + bh * k2))


def k2_for_floor_share(share, batch_size, c2, beta):
    """The K² at which :func:`floor_share` equals ``share`` (0 ≤ share < 1): below it the floor
    is less than that share of δ_SHB at b. s²(1 + β̂)C² / (b·β̂·(1 − s²))."""
    s, b, c2 = (np.asarray(v, dtype=float) for v in (share, batch_size, c2))
    bh = beta_hat(beta)
    return s**2 * (1.0 + bh) * c2 / (b * bh * (1.0 - s**2))


def rastrigin(x):
    """One-dimensional Rastrigin function f(x) = x² − 10 cos(2πx) + 10."""
    x = np.asarray(x, dtype=float)
    return x**2 - 10.0 * np.cos(2.0 * np.pi * x) + 10.0


def rastrigin_smoothed(x, delta):
    """E_u[f(x − δu)], u ~ N(0, 1), in closed form: x² + δ² − 10cos(2πx)e^{−2π²δ²} + 10."""
    x = np.asarray(x, dtype=float)
    delta = np.asarray(delta, dtype=float)
    return (
        x**2 + delta**2 - 10.0 * np.cos(2.0 * np.pi * x) * np.exp(-2.0 * np.pi**2 * delta**2) + 10.0
    )
