"""Adaptive sharpness against closed forms on quadratics, and its invariances; plain sharpness
beside it in every measured run and in Figure 8."""

import math

import pandas as pd
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
    value, u = S.worst_case(
        lambda: 0.5 * (w - w0) @ H @ (w - w0),
        [w],
        [w0.abs()],
        rho,
        "2",
        iterations=100,
        random_start=True,
        generator=torch.Generator().manual_seed(3),
    )
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
    S.adaptive_sharpness(
        model, digits.normalize(digits.train_x[:128]), digits.train_y[:128], rho=0.01, p="2"
    )
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_checkpoints_of_auto_pgd():
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (then 1.05 is past the end)
    assert S.checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    marks = S.checkpoints(20)
    assert marks[0] == math.ceil(0.22 * 20) and marks[-1] == 20 and marks == sorted(set(marks))


def unit_linear(scale):
    # Every weight and bias ±scale: at scale 1, c = |w| = 1 and adaptive is plain exactly.
    g = torch.Generator().manual_seed(4)
    net = nn.Linear(5, 3).double()
    with torch.no_grad():
        for t in net.parameters():
            t.copy_(scale * torch.where(torch.rand(t.shape, generator=g) < 0.5, -1.0, 1.0))
    return net


def test_plain_and_adaptive_differ_only_through_the_scale():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=g)

    def both(net):
        return [
            S.adaptive_sharpness(net, x, y, rho=0.01, batch_size=32, adaptive=a)
            for a in (True, False)
        ]

    a1, p1 = both(unit_linear(1.0))
    assert a1.worst > 0 and (a1.worst, a1.average) == (p1.worst, p1.average)
    # |w| = 0.1: the adaptive ball is ten times smaller in every coordinate, the plain one is not.
    a2, p2 = both(unit_linear(0.1))
    assert p2.worst > 5 * a2.worst > 0


def _fake_run(path, seed, status):
    from sgdsmooth import tables

    cfg = {
        "optimizer": "sgd",
        "lr": 0.1,
        "beta": 0.0,
        "batch_size": 16,
        "seed": seed,
        "device": "cpu",
        "dataset": "digits",
        "data_root": "resources",
        "model": "small_cnn",
    }
    empty = pd.DataFrame(
        {
            f: pd.Series(dtype=t.to_pandas_dtype())
            for f, t in zip(tables.SCHEMAS["epochs"].names, tables.SCHEMAS["epochs"].types)
        }
    )
    tables.write_table(empty, path, "epochs", {"config": cfg, "summary": {"status": status}})


def test_measure_runs_writes_both_variants(tmp_path, digits):
    from sgdsmooth import tables
    from sgdsmooth.models import make_model

    torch.manual_seed(0)
    model = make_model("small_cnn", 10, 1)  # freshly initialised: |w| far from 1
    torch.save(model.state_dict(), tmp_path / "w.pt")
    _fake_run(tmp_path / "ok.parquet", 3, "ok")
    _fake_run(tmp_path / "bad.parquet", 4, "diverged")
    outs = [tmp_path / "s_ok.parquet", tmp_path / "s_bad.parquet"]
    settings = dict(rho=2e-4, p="inf", iterations=3, n_examples=64, batch_size=32)
    S.measure_runs(
        [tmp_path / "ok.parquet", tmp_path / "bad.parquet"],
        [tmp_path / "w.pt"] * 2,
        outs,
        **settings,
    )
    ok, bad = (tables.read_table(o, "sharpness_run").iloc[0] for o in outs)
    x, y = digits.normalize(digits.train_x[:64]), digits.train_y[:64]
    kw = dict(rho=2e-4, p="inf", iterations=3, batch_size=32, seed=3)
    adaptive, plain = (
        S.adaptive_sharpness(model, x, y, **kw),
        S.adaptive_sharpness(model, x, y, adaptive=False, **kw),
    )
    assert ok.sharpness == pytest.approx(adaptive.worst, rel=1e-6)
    assert ok.average_sharpness == pytest.approx(adaptive.average, rel=1e-6)
    assert ok.sharpness_plain == pytest.approx(plain.worst, rel=1e-6)
    assert ok.average_sharpness_plain == pytest.approx(plain.average, rel=1e-6)
    assert ok.sharpness_plain > 2 * ok.sharpness > 0  # not the adaptive value twice
    assert (
        bad[["sharpness", "average_sharpness", "sharpness_plain", "average_sharpness_plain"]]
        .isna()
        .all()
    )


@pytest.mark.parametrize("adaptive", [True, False])
def test_fig8_draws_the_primary_variant_first(tmp_path, monkeypatch, adaptive):
    from matplotlib.figure import Figure

    from sgdsmooth import tables
    from sgdsmooth.figures import fig8_sharpness

    rows = [
        {
            "optimizer": "sgd",
            "lr": lr,
            "beta": 0.0,
            "batch_size": b,
            "seed": s,
            "rho": 2e-4,
            "p": "inf",
            "sharpness": 1e-3 * b,
            "average_sharpness": 1e-5,
            "sharpness_plain": 1e-1 * b,
            "average_sharpness_plain": 1e-3,
            "test_accuracy": 0.9 - 0.01 * b,
            "delta": 0.1 / b,
        }
        for lr in (0.05, 0.1)
        for b in (2, 4, 8)
        for s in (0, 1)
    ]
    tables.write_table(pd.DataFrame(rows), tmp_path / "s.parquet", "sharpness")
    figs, saved = [], []
    monkeypatch.setattr(fig8_sharpness.plt, "close", figs.append)
    # Rendering takes seconds and is the workflow test's job; here only what is drawn.
    monkeypatch.setattr(Figure, "savefig", lambda self, path, **kw: saved.append(path))
    fig8_sharpness.draw(
        str(tmp_path / "s.parquet"),
        str(tmp_path / "f.pdf"),
        str(tmp_path / "f.png"),
        adaptive=adaptive,
    )
    axes = figs[0].axes
    first, second = ("adaptive", "plain") if adaptive else ("plain", "adaptive")
    assert [ax.get_ylabel() for ax in axes[:3]] == [
        f"{first} sharpness",
        f"{second} sharpness",
        f"{first} sharpness",
    ]
    assert axes[4].get_xlabel() == f"{first} sharpness"
    # Panel (a) plots the primary column: at b = 8, 8e-3 (adaptive) or 0.8 (plain).
    top = max(max(line.get_ydata(), default=0) for line in axes[0].get_lines())
    assert top == pytest.approx(8e-3 if adaptive else 0.8)
    assert saved == [str(tmp_path / "f.pdf"), str(tmp_path / "f.png")]
    monkeypatch.undo()
    fig8_sharpness.plt.close(figs[0])


def test_fig8_says_how_many_points_a_log_axis_cannot_show(tmp_path, monkeypatch):
    # δ is missing where b* is undetermined and a sharpness estimate can be ≤ 0: the figure is
    # still drawn, and each panel counts what it leaves out instead of dropping it silently.
    from matplotlib.figure import Figure

    from sgdsmooth import tables
    from sgdsmooth.figures import fig8_sharpness

    rows = [
        {
            "optimizer": "sgd",
            "lr": 0.1,
            "beta": 0.0,
            "batch_size": b,
            "seed": 0,
            "rho": 2e-4,
            "p": "inf",
            "sharpness": 1e-3 * b - 2e-3,
            "average_sharpness": 0.0,
            "sharpness_plain": 0.1,
            "average_sharpness_plain": 0.0,
            "test_accuracy": 0.9,
            "delta": float("nan"),
        }
        for b in (1, 2, 4, 8)
    ]
    tables.write_table(pd.DataFrame(rows), tmp_path / "s.parquet", "sharpness")
    figs = []
    monkeypatch.setattr(fig8_sharpness.plt, "close", figs.append)
    monkeypatch.setattr(Figure, "savefig", lambda self, path, **kw: None)
    fig8_sharpness.draw(
        str(tmp_path / "s.parquet"), str(tmp_path / "f.pdf"), str(tmp_path / "f.png")
    )
    axes = figs[0].axes
    notes = [[t.get_text() for t in ax.texts] for ax in axes[:6]]
    assert notes[0] == ["2 of 4 without a positive sharpness"]  # b = 1 and 2: −1e-3 and 0
    assert axes[0].get_yscale() == "log" and axes[3].get_xscale() == "linear"  # no δ at all: linear
    assert (
        "4 of 4 without a positive delta" in notes[3]
        and "4 of 4 without a positive delta" in notes[5]
    )
    monkeypatch.undo()
    fig8_sharpness.plt.close(figs[0])
