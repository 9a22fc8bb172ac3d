"""Measured gradient quantities: the full gradient, K², C², search-direction noise.

BatchNorm convention: the full-batch gradient ∇f(x) is taken with BatchNorm in **eval**
mode (running statistics), which makes f a fixed function of the weights whose gradient
does not depend on how the training set is chunked. Mini-batch gradients for the C²
estimator use **train** mode, as the optimizer sees them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageData


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def full_gradient(model: nn.Module, data: ImageData, chunk: int = 1000) -> list[torch.Tensor]:
    """∇f(x) of the mean cross-entropy over the whole (un-augmented) training set.

    BatchNorm is in eval mode; the model's mode and its .grad fields are restored after.
    """
    was_training = model.training
    model.eval()
    params = _params(model)
    total = [torch.zeros_like(p) for p in params]
    n = data.n_train
    for start in range(0, n, chunk):
        x = data.normalize(data.train_x[start : start + chunk])
        y = data.train_y[start : start + chunk]
        loss = F.cross_entropy(model(x), y, reduction="sum") / n
        grads = torch.autograd.grad(loss, params)
        torch._foreach_add_(total, grads)
    model.train(was_training)
    return total


def squared_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """‖v‖² of a vector stored as a list of tensors (0-dim tensor, float64)."""
    return torch.stack([t.double().pow(2).sum() for t in tensors]).sum()


def full_gradient_norm_sq(model: nn.Module, data: ImageData, chunk: int = 1000) -> float:
    """‖∇f(x)‖² on the full training set (BatchNorm in eval mode): one sample of K²."""
    return float(squared_norm(full_gradient(model, data, chunk)))
