"""Adaptive sharpness against closed forms on quadratics, and its invariances."""

import math

import pytest
import torch
from torch import nn

from sgdsmooth import sharpness as S


def weights(dtype=torch.float64, n=12, seed=0):
    # Magnitudes spanning three decades, mixed signs, one weight exactly zero.
    g = torch.Generator().manual_seed(seed)
    mags = 10 ** torch.linspace(-3, 0, n, dtype=dtype)
    w = mags * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).to(dtype)
    w[3] = 0.0
    return w


@pytest.mark.parametrize("p", ["inf", "2"])
def test_linear_loss_closed_form(p):
    w = weights().requires_grad_(True)
    b = torch.randn(12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rho = 0.05
    value, u = S.worst_case(lambda: b @ w, [w], [w.detach().abs()], rho, p, iterations=20)
    db = w.detach().abs() * b
    expected = rho * (db.norm(1) if p == "inf" else db.norm(2))
    assert value == pytest.approx(float(expected), rel=1e-9)
    # Feasible, and the zero weight did not move.
    assert float(u[0].abs().max() if p == "inf" else u[0].norm()) <= rho * (1 + 1e-12)
    assert not torch.isnan(u[0]).any()
    assert torch.equal(w.detach(), weights())  # restored exactly


def test_quadratic_with_random_start_finds_the_top_eigenvalue():
    w0 = weights()
    w0[3] = 0.5  # keep D invertible so that λ_max(DHD) is the answer
    g = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64, generator=g))
    H = q @ torch.diag(torch.linspace(0.1, 4.0, 12, dtype=torch.float64)) @ q.T
    w = w0.clone().requires_grad_(True)
    rho = 0.1
    value, u = S.worst_case(lambda: 0.5 * (w - w0) @ H @ (w - w0), [w], [w0.abs()], rho, "2", iterations=100,
                            random_start=True, generator=torch.Generator().manual_seed(3))
    D = torch.diag(w0.abs())
    expected = 0.5 * rho**2 * torch.linalg.eigvalsh(D @ H @ D).max()
    assert value == pytest.approx(float(expected), rel=1e-3)
    assert float(u[0].norm()) <= rho * (1 + 1e-12)


def test_without_random_start_a_stationary_point_stays_put():
    w0 = weights()
    w = w0.clone().requires_grad_(True)
    value, _ = S.worst_case(lambda: ((w - w0) ** 2).sum(), [w], [w0.abs()], 0.1, "2")
    assert value == 0.0


def relu_net(alpha=1.0):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():  # rescale hidden unit 2: incoming × α, outgoing × 1/α
        net[0].weight[2] *= alpha
        net[0].bias[2] *= alpha
        net[2].weight[:, 2] /= alpha
    return net.double()


def test_adaptive_sharpness_is_invariant_to_relu_rescaling_plain_is_not():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=g)
    a, b = relu_net(1.0), relu_net(10.0)
    torch.testing.assert_close(a(x), b(x))  # the same function
    sa = S.adaptive_sharpness(a, x, y, rho=0.01, batch_size=32)
    sb = S.adaptive_sharpness(b, x, y, rho=0.01, batch_size=32)
    assert sa.worst == pytest.approx(sb.worst, rel=1e-6)
    pa = S.adaptive_sharpness(a, x, y, rho=0.01, batch_size=32, adaptive=False)
    pb = S.adaptive_sharpness(b, x, y, rho=0.01, batch_size=32, adaptive=False)
    assert abs(pa.worst - pb.worst) > 0.05 * pa.worst


def test_fp32_agrees_with_fp64_at_the_articles_radius(digits):
    from sgdsmooth.models import make_model

    torch.manual_seed(0)
    model = make_model("small_cnn", 10, 1)
    x, y = digits.normalize(digits.train_x[:256]), digits.train_y[:256]
    r32 = S.adaptive_sharpness(model, x, y, rho=2e-4)
    r64 = S.adaptive_sharpness(model.double(), x.double(), y, rho=2e-4)
    assert r64.worst > 0
    assert r32.worst == pytest.approx(r64.worst, rel=0.02)
    assert r32.average == pytest.approx(r64.average, abs=0.05 * r64.worst + 1e-7)


def test_model_is_left_untouched(digits):
    from sgdsmooth.models import make_model

    model = make_model("small_cnn", 10, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    S.adaptive_sharpness(model, digits.normalize(digits.train_x[:128]), digits.train_y[:128], rho=0.01, p="2")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_checkpoints_of_auto_pgd():
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (then 1.05 is past the end)
    assert S.checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    marks = S.checkpoints(20)
    assert marks[0] == math.ceil(0.22 * 20) and marks[-1] == 20 and marks == sorted(set(marks))
