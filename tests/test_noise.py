"""Noise estimators: against linear least squares, where everything has a closed form, and on
a BatchNorm network, where each must be of the train-mode function the optimizer descends."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgdsmooth import noise
from sgdsmooth.optim import make_optimizer

N, D = 60, 5


def problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(N, D, generator=g, dtype=torch.float64)
    y = a @ torch.randn(D, generator=g, dtype=torch.float64) + 0.5 * torch.randn(
        N, generator=g, dtype=torch.float64
    )
    model = nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, D, generator=g, dtype=torch.float64))
    return model, a, y


def lsq(out, target, reduction="mean"):
    per = 0.5 * (out.squeeze(1) - target) ** 2
    return per.mean() if reduction == "mean" else per


def truth(model, a, y):
    w = model.weight.detach()[0]
    per = (a @ w - y)[:, None] * a  # ∇f_i = (aᵢᵀw − yᵢ)aᵢ
    mean = per.mean(0)
    return per, mean, float(((per - mean) ** 2).sum(1).mean())


def test_chunks_partition_the_set_and_never_leave_one_example_alone():
    parts = noise.chunks(17, 8, torch.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [8, 9]  # 8 + 8 + 1: the single example joins the chunk before
    assert sorted(torch.cat(parts).tolist()) == list(range(17))
    assert [len(p) for p in noise.chunks(20, 8, torch.Generator())] == [8, 8, 4]


@pytest.mark.parametrize("b", [1, 7, 60])
def test_full_gradient_is_exact_without_batchnorm_at_any_chunking(b):
    model, a, y = problem()
    _, mean, _ = truth(model, a, y)
    full = noise.full_gradient(model, (a, y), b, torch.Generator().manual_seed(3), lsq)
    torch.testing.assert_close(full[0][0], mean)


def test_per_example_noise_is_the_exact_trace_without_batchnorm():
    model, a, y = problem()
    _, mean, c2 = truth(model, a, y)
    out = noise.per_example_noise(
        model, (a, y), 7, N, torch.Generator().manual_seed(0), [mean[None]], lsq
    )
    assert out["c2_per_example"] == pytest.approx(c2, rel=1e-10) and out["n_per_example"] == N


def test_batch_noise_is_unbiased_for_the_trace_with_an_honest_standard_error():
    model, a, y = problem()
    _, mean, c2 = truth(model, a, y)
    gen = torch.Generator().manual_seed(1)
    draws = [noise.batch_noise(model, (a, y), 6, 8, gen, [mean[None]], lsq) for _ in range(600)]
    est = torch.tensor([d["c2"] for d in draws])
    assert abs(est.mean() - c2) < 4 * est.std() / math.sqrt(len(est))
    assert (est > 0).all()  # the paired form cannot go negative
    # The stated standard error of one estimate matches the spread of the estimates.
    assert torch.tensor([d["c2_stderr"] for d in draws]).mean() == pytest.approx(
        float(est.std()), rel=0.25
    )
    assert draws[0]["c2_batches"] == 8


def test_sgd_direction_noise_matches_the_sampling_variance():
    model, a, y = problem()
    _, _, c2 = truth(model, a, y)
    b = 6
    opt = make_optimizer("sgd", model.parameters(), lr=1e-12)  # x stays put: the truth is fixed
    measured = noise.direction_noise(
        model, opt, (a, y), b, 1500, torch.Generator().manual_seed(2), lsq
    )
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
    per, mean, _ = truth(model, a, y)
    measured = noise.direction_noise(
        model, opt, (a, y), b, 1, torch.Generator().manual_seed(5), lsq, first_full=[mean[None]]
    )
    idx = torch.randperm(N, generator=torch.Generator().manual_seed(5))[:b]
    scale = 1 - beta if name == "nshb" else 1.0
    d = scale * per[idx].mean(0) + beta * previous[0]
    assert measured == pytest.approx(float(((d - mean) ** 2).sum()), rel=1e-10)
    assert torch.equal(model.weight.detach(), before)  # the run's model is untouched
    assert torch.equal(opt.state[model.weight]["direction"], previous)


def test_a_given_first_full_gradient_is_used_as_is():
    model, a, y = problem()
    per, mean, _ = truth(model, a, y)
    opt = make_optimizer("sgd", model.parameters(), lr=1e-12)
    zero = [torch.zeros(1, D, dtype=torch.float64)]
    with_zero = noise.direction_noise(
        model, opt, (a, y), 6, 1, torch.Generator().manual_seed(7), lsq, first_full=zero
    )
    idx = torch.randperm(N, generator=torch.Generator().manual_seed(7))[:6]
    assert with_zero == pytest.approx(float((per[idx].mean(0) ** 2).sum()), rel=1e-10)


# -- one function under BatchNorm -------------------------------------------------------
@pytest.fixture
def bn_net(digits):
    """The default CNN with running statistics far from any batch's, so that a gradient taken
    in eval mode differs grossly from one in train mode."""
    from sgdsmooth.models import make_model

    torch.manual_seed(0)
    model = make_model("small_cnn", 10, 1)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
                m.running_var.fill_(0.05)
                # Distinct per-channel affine weights: a ghost pass that tiled them in the wrong
                # order (channel-major instead of chunk-major) would then give another gradient.
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen))
    x, y = digits.normalize(digits.train_x[:96]), digits.train_y[:96]
    return model, x, y


def train_mode_gradient(model, x, y):
    model.train()
    return list(torch.autograd.grad(F.cross_entropy(model(x), y), [p for p in model.parameters()]))


def eval_mode_gradient(model, x, y):
    model.eval()
    g = list(torch.autograd.grad(F.cross_entropy(model(x), y), [p for p in model.parameters()]))
    model.train()
    return g


@pytest.mark.parametrize(
    "pass_size", [32, 64, 1024]
)  # one chunk a pass, two, all (ghost BatchNorm)
def test_full_gradient_is_the_train_mode_gradient_of_the_partition(bn_net, pass_size):
    model, x, y = bn_net
    x, y = x[:90], y[:90]  # chunks of 32, 32 and a remainder of 26
    full = noise.full_gradient(
        model, (x, y), 32, torch.Generator().manual_seed(9), pass_size=pass_size
    )
    parts = noise.chunks(90, 32, torch.Generator().manual_seed(9))
    grads = [[g * (len(i) / 90) for g in train_mode_gradient(model, x[i], y[i])] for i in parts]
    by_hand = [sum(g) for g in zip(*grads)]
    assert noise.distance_sq(full, by_hand) < 1e-10 * float(noise.squared_norm(by_hand))
    evalmode = eval_mode_gradient(model, x, y)
    assert noise.distance_sq(full, evalmode) > 0.1 * float(
        noise.squared_norm(full)
    )  # the test can tell


def test_per_example_gradients_average_to_the_train_mode_batch_gradient(bn_net):
    # mean_i‖ψ_i − v‖² = V + ‖ψ̄ − v‖²: equal at v = 0 and v = 2g exactly when ψ̄ = g, the
    # train-mode gradient of the batch (eval-mode per-example gradients average to another vector).
    model, x, y = bn_net
    x, y = x[:32], y[:32]
    g = train_mode_gradient(model, x, y)

    def c2(v):
        return noise.per_example_noise(model, (x, y), 32, 32, torch.Generator(), v)[
            "c2_per_example"
        ]

    at_zero, at_g, at_2g = c2([0 * t for t in g]), c2(g), c2([2 * t for t in g])
    assert at_zero == pytest.approx(at_2g, rel=1e-6)
    assert at_zero - at_g == pytest.approx(float(noise.squared_norm(g)), rel=1e-4)


def test_batch_noise_and_direction_noise_use_train_mode_batches(bn_net):
    model, x, y = bn_net
    b, n = 16, 96
    zero = [torch.zeros_like(p) for p in model.parameters()]
    c2 = noise.batch_noise(model, (x, y), b, 3, torch.Generator().manual_seed(4), zero)["c2"]
    gen = torch.Generator().manual_seed(4)
    idx = [torch.randperm(n, generator=gen)[:b] for _ in range(3)]
    norms = [float(noise.squared_norm(train_mode_gradient(model, x[i], y[i]))) for i in idx]
    assert c2 == pytest.approx(b * (n - 1) / (n - b) * sum(norms) / 3, rel=1e-6)
    opt = make_optimizer("sgd", model.parameters(), lr=1e-3)
    omega = noise.direction_noise(
        model, opt, (x, y), b, 1, torch.Generator().manual_seed(4), first_full=zero
    )
    assert omega == pytest.approx(norms[0], rel=1e-6)


def test_measure_restores_the_network_and_names_its_function(bn_net, digits):
    model, _, _ = bn_net
    opt = make_optimizer("shb", model.parameters(), lr=0.1, beta=0.9)
    before = {k: v.clone() for k, v in model.named_buffers()}
    row = noise.measure(
        model, opt, digits, 0.1, 64, 0, n_batches=3, direction_steps=1, per_example=8
    )
    assert all(torch.equal(before[k], v) for k, v in model.named_buffers()) and model.training
    assert row["bn_mode"] == "train" and row["augmented"] is False
    assert row["noise_scale"] == pytest.approx(row["c2"] / row["k2"])
    k2 = noise.full_gradient_norm_sq(model, digits, 64, seed=5)
    assert k2 == pytest.approx(row["k2"], rel=0.5)  # another partition of the same function
