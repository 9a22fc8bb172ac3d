"""Noise estimators against linear least squares, where everything has a closed form."""

import math

import pytest
import torch
from torch import nn

from sgdsmooth import noise
from sgdsmooth.optim import make_optimizer

N, D = 60, 5


def problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(N, D, generator=g, dtype=torch.float64)
    y = a @ torch.randn(D, generator=g, dtype=torch.float64) + 0.5 * torch.randn(N, generator=g, dtype=torch.float64)
    model = nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, D, generator=g, dtype=torch.float64))
    return model, a, y


def lsq(out, target):
    return 0.5 * ((out.squeeze(1) - target) ** 2).mean()


def truth(model, a, y):
    w = model.weight.detach()[0]
    per = (a @ w - y)[:, None] * a  # ∇f_i = (aᵢᵀw − yᵢ)aᵢ
    mean = per.mean(0)
    return per, mean, float(((per - mean) ** 2).sum(1).mean())


def test_full_gradient_and_exact_per_example_variance():
    model, a, y = problem()
    per, mean, c2 = truth(model, a, y)
    torch.testing.assert_close(noise.full_gradient(model, a, y, lsq, chunk=7)[0][0], mean)
    assert noise.per_example_variance(model, a, y, lsq, chunk=16) == pytest.approx(c2, rel=1e-10)


def test_two_batch_estimator_is_unbiased():
    model, a, y = problem()
    _, mean, c2 = truth(model, a, y)
    gen = torch.Generator().manual_seed(1)
    draws = [noise.two_batch_variance(model, a, y, 4, 30, 4, gen, lsq) for _ in range(600)]
    traces = torch.tensor([d["trace"] for d in draws])
    g2 = torch.tensor([d["grad_sq"] for d in draws])
    se = traces.std() / math.sqrt(len(traces))
    assert abs(traces.mean() - c2) < 4 * se
    assert abs(g2.mean() - float(mean @ mean)) < 4 * g2.std() / math.sqrt(len(g2))
    # The stated standard error of one estimate matches the spread of the estimates.
    assert torch.tensor([d["trace_stderr"] for d in draws]).mean() == pytest.approx(float(traces.std()), rel=0.25)


def test_sgd_direction_noise_matches_the_sampling_variance():
    model, a, y = problem()
    _, _, c2 = truth(model, a, y)
    b = 6
    opt = make_optimizer("sgd", model.parameters(), lr=1e-12)  # x stays put: the truth is fixed
    measured = noise.direction_noise(model, opt, a, y, b, 1500, torch.Generator().manual_seed(2), lsq)
    expected = c2 * (N - b) / ((N - 1) * b)  # E‖G_B − ∇f‖² without replacement
    assert measured == pytest.approx(expected, rel=0.08)


@pytest.mark.parametrize("name", ["shb", "nshb"])
def test_momentum_direction_noise_by_hand(name):
    model, a, y = problem()
    beta, b = 0.9, 8
    opt = make_optimizer(name, model.parameters(), lr=0.05, beta=beta)
    previous = torch.randn(1, D, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    opt.state[model.weight]["direction"] = previous.clone()
    before = model.weight.detach().clone()
    gen = torch.Generator().manual_seed(5)
    measured = noise.direction_noise(model, opt, a, y, b, 1, gen, lsq)
    idx = torch.randperm(N, generator=torch.Generator().manual_seed(5))[:b]
    per, mean, _ = truth(model, a, y)
    scale = 1 - beta if name == "nshb" else 1.0
    d = scale * per[idx].mean(0) + beta * previous[0]
    assert measured == pytest.approx(float(((d - mean) ** 2).sum()), rel=1e-10)
    assert torch.equal(model.weight.detach(), before)  # the run's model is untouched
    assert torch.equal(opt.state[model.weight]["direction"], previous)


def test_batchnorm_statistics_are_restored(digits):
    from sgdsmooth.models import make_model

    model = make_model("small_cnn", 10, 1)
    before = {k: v.clone() for k, v in model.named_buffers()}
    x, y = digits.normalize(digits.train_x[:300]), digits.train_y[:300]
    noise.two_batch_variance(model, x, y, 8, 128, 2, torch.Generator().manual_seed(0))
    assert all(torch.equal(before[k], v) for k, v in model.named_buffers())
    assert model.training


def test_a_given_first_full_gradient_is_used_as_is():
    model, a, y = problem()
    opt = make_optimizer("sgd", model.parameters(), lr=1e-12)
    full = noise.full_gradient(model, a, y, lsq)
    zero = [torch.zeros_like(t) for t in full]
    args = (model, opt, a, y, 6, 1)
    with_true = noise.direction_noise(*args, torch.Generator().manual_seed(7), lsq, first_full=full)
    recomputed = noise.direction_noise(*args, torch.Generator().manual_seed(7), lsq)
    with_zero = noise.direction_noise(*args, torch.Generator().manual_seed(7), lsq, first_full=zero)
    assert with_true == pytest.approx(recomputed, rel=1e-12) and with_zero != pytest.approx(recomputed)
