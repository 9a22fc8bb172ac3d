"""The three update rules against hand-computed iterations on f(x) = ½ xᵀAx."""

import pytest
import torch

from sgdsmooth.optim import coefficients, make_optimizer, stacked_step

A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
X0 = torch.tensor([1.0, -2.0], dtype=torch.float64)


def run_torch(name, lr, beta, steps):
    x = X0.clone().requires_grad_(True)
    opt = make_optimizer(name, [x], lr, beta)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * x @ A @ x).backward()
        opt.step()
        out.append(x.detach().clone())
    return out


def run_by_hand(name, lr, beta, steps):
    x, d, out = X0.clone(), torch.zeros(2, dtype=torch.float64), []
    for _ in range(steps):
        g = A @ x
        if name == "sgd":
            d = g
        elif name == "shb":
            d = g + beta * d
        else:
            d = (1 - beta) * g + beta * d
        x = x - lr * d
        out.append(x.clone())
    return out


@pytest.mark.parametrize("name", ["sgd", "shb", "nshb"])
def test_iterates_match_hand_computation(name):
    for got, want in zip(run_torch(name, 0.1, 0.9, 6), run_by_hand(name, 0.1, 0.9, 6)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)


def test_nshb_first_step_is_damped():
    # d_0 = (1 − β) g_0: the first step is 10× shorter than SGD's at β = 0.9.
    g0 = A @ X0
    (x1,) = run_torch("nshb", 0.1, 0.9, 1)
    torch.testing.assert_close(x1, X0 - 0.1 * 0.1 * g0)


def test_nshb_differs_from_torch_dampening():
    # torch's SGD(momentum=β, dampening=β) uses g_0 on the first step: not NSHB.
    x = X0.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=0.1, momentum=0.9, dampening=0.9)
    (0.5 * x @ A @ x).backward()
    opt.step()
    (ours,) = run_torch("nshb", 0.1, 0.9, 1)
    assert not torch.allclose(x.detach(), ours)


def test_shb_matches_torch_momentum():
    x = X0.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=0.1, momentum=0.9)
    for _ in range(5):
        opt.zero_grad()
        (0.5 * x @ A @ x).backward()
        opt.step()
    torch.testing.assert_close(x.detach(), run_torch("shb", 0.1, 0.9, 5)[-1])


def test_directions_are_exposed():
    x = X0.clone().requires_grad_(True)
    opt = make_optimizer("nshb", [x], 0.1, 0.9)
    (0.5 * x @ A @ x).backward()
    opt.step()
    torch.testing.assert_close(opt.directions()[0], 0.1 * (A @ X0))


@pytest.mark.parametrize(
    "kwargs, key", [(dict(lr=0.0, beta=0.5), "lr"), (dict(lr=0.1, beta=1.0), "beta")]
)
def test_bad_hyperparameters(kwargs, key):
    with pytest.raises(ValueError, match=key):
        make_optimizer("shb", [torch.zeros(1, requires_grad=True)], **kwargs)


def test_stacked_step_is_each_members_own_optimizer():
    """One stacked step of SGD, SHB and NSHB members (own η, β) is, row by row, the step of
    each member's own Momentum optimizer: three steps from the same gradients."""
    names, lrs, betas = ["sgd", "shb", "nshb"], [0.1, 0.05, 0.2], [0.9, 0.8, 0.7]
    coef = {
        k: torch.tensor(v, dtype=torch.float64) for k, v in coefficients(names, lrs, betas).items()
    }
    assert coef["beta"].tolist() == [0.0, 0.8, 0.7] and coef["scale"].tolist() == [1, 1, 1 - 0.7]
    g = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    grads = [torch.randn(3, 4, 2, generator=g, dtype=torch.float64) for _ in range(3)]
    stacked = start.clone().requires_grad_(True)
    directions = [torch.zeros_like(start)]
    singles = [start[i].clone().requires_grad_(True) for i in range(3)]
    opts = [make_optimizer(n, [p], lr, b) for n, p, lr, b in zip(names, singles, lrs, betas)]
    for grad in grads:
        stacked.grad = grad.clone()
        stacked_step([stacked], directions, **coef)
        for i, (p, opt) in enumerate(zip(singles, opts)):
            p.grad = grad[i].clone()
            opt.step()
    for i, p in enumerate(singles):
        torch.testing.assert_close(stacked[i], p, rtol=1e-15, atol=1e-15)
    assert not torch.equal(stacked[0], stacked[1])  # the members did differ
