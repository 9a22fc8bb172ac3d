"""The fused ensemble is the same computation as its members trained separately."""

import pandas as pd
import pytest
import torch

from sgdsmooth import ensemble as E
from sgdsmooth.config import RunConfig
from sgdsmooth.models import make_model
from sgdsmooth.optim import make_optimizer
from sgdsmooth.tables import read_table
from sgdsmooth.train import Interrupted, grad_norm, train

SEEDS = [0, 1, 2]


def members(name, classes, channels):
    out = []
    for s in SEEDS:
        torch.manual_seed(s)
        out.append(make_model(name, classes, channels))
    return out


def test_packed_forward_equals_each_member_in_both_modes():
    for name, classes, shape in (
        ("small_cnn", 10, (5, 1, 8, 8)),
        ("mnist_cnn", 10, (4, 1, 28, 28)),
        ("resnet18", 100, (2, 3, 32, 32)),
    ):
        models = members(name, classes, shape[1])
        packed = E.pack(models)
        xs = [
            torch.randn(shape, generator=torch.Generator().manual_seed(10 + i))
            for i in range(len(models))
        ]
        for train_mode in (False, True):
            for m in [packed, *models]:
                m.train(train_mode)
            out = packed(E.fused_input(xs))
            for i, (m, x) in enumerate(zip(models, xs)):
                torch.testing.assert_close(out[:, i], m(x), rtol=1e-4, atol=1e-5)


def test_unpack_inverts_pack():
    models = members("small_cnn", 10, 1)
    back = E.unpack(E.pack(models), models[0], len(models))
    for a, b in zip(models, back):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize(
    "optimizer, lrs", [("shb", [0.05] * 3), ("shb", [0.02, 0.05, 0.1]), ("sgd", [0.02, 0.05, 0.1])]
)
def test_training_steps_match_separate_runs(digits, optimizer, lrs):
    """Over one epoch at b = 64: the fused ensemble against three separate runs with the
    same shuffles, step by step, with one η or one per member. In float64, so that the
    comparison is tight: in float32 rounding differences of 1e-7 grow through training (to
    1e-3 after 20 steps here)."""
    b, steps = 64, digits.n_train // 64
    models = [m.double() for m in members("small_cnn", 10, 1)]
    fused = E.FusedTrainer(models, optimizer, lrs, 0.9)
    singles = [
        make_optimizer(optimizer, list(m.parameters()), lr, 0.9) for m, lr in zip(models, lrs)
    ]
    perms = [
        torch.randperm(digits.n_train, generator=torch.Generator().manual_seed(s)) for s in SEEDS
    ]
    for step in range(steps):
        batches = [digits.train_batch(p[step * b : (step + 1) * b], None) for p in perms]
        xs, ys = [x.double() for x, _ in batches], [y for _, y in batches]
        losses, norms, _ = fused.step(xs, ys)
        separate = []
        for m, o, x, y in zip(models, singles, xs, ys):
            o.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(m(x), y)
            loss.backward()
            separate.append((loss.detach(), grad_norm(list(m.parameters()))))
            o.step()
        torch.testing.assert_close(
            losses, torch.stack([loss for loss, _ in separate]), rtol=1e-10, atol=0
        )
        torch.testing.assert_close(norms, torch.stack([n for _, n in separate]), rtol=1e-10, atol=0)
    for m, member in zip(models, E.unpack(fused.model, models[0], len(SEEDS))):
        for (k, a), c in zip(m.state_dict().items(), member.state_dict().values()):
            torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-12, msg=k)


# -- the fused driver: whole runs, as the pipeline trains them --------------------------


def cell(protocol, **kw):
    if protocol == "epochs":
        base = dict(optimizer="nshb", lr=0.02, epochs=2, full_grad_epochs=[2], noise_epochs=[2])
    else:  # the three seeds reach ε at steps 97, 84 and 92
        base = dict(optimizer="shb", lr=0.05, epsilon=0.5, max_steps=400)
    base |= dict(protocol=protocol, beta=0.9, batch_size=128)
    return [RunConfig(**(base | kw | {"seed": s})) for s in SEEDS]


def assert_same_tables(fused_dir, separate_dir, name, schema, skip):
    for s in SEEDS:
        a = read_table(fused_dir / f"seed{s}" / name, schema).drop(columns=skip)
        b = read_table(separate_dir / f"seed{s}" / name, schema).drop(columns=skip)
        pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-12, obj=f"seed {s}: {name}")


@pytest.mark.parametrize("protocol", ["epochs", "cbs"])
def test_fused_runs_write_the_tables_of_separate_runs(tmp_path, digits, protocol, float64):
    """Each member of a fused cell is its separate run: the same stopping step (the CBS
    members stop at different steps and leave the pack), the same per-epoch numbers, noise
    table and final weights, up to rounding."""
    cfgs = cell(protocol)
    summaries = E.train_fused(cfgs, [tmp_path / "fused" / f"seed{s}" for s in SEEDS], digits)
    separate = [train(c, tmp_path / "separate" / f"seed{c.seed}", digits) for c in cfgs]
    losses = [s.pop("train_loss") for s in summaries], [s.pop("train_loss") for s in separate]
    assert summaries == separate and losses[0] == pytest.approx(losses[1], rel=1e-9)
    fused, apart = tmp_path / "fused", tmp_path / "separate"
    if protocol == "cbs":
        assert len({s["steps"] for s in summaries}) == len(SEEDS), (
            "members should stop at different steps"
        )
        assert_same_tables(fused, apart, "metrics.parquet", "cbs_epochs", ["wall_time"])
        return
    assert_same_tables(fused, apart, "metrics.parquet", "epochs", ["wall_time"])
    assert_same_tables(fused, apart, "noise.parquet", "noise", ["seconds"])
    for s in SEEDS:
        wa = torch.load(fused / f"seed{s}" / "final.pt")
        wb = torch.load(apart / f"seed{s}" / "final.pt")
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-9, atol=1e-12, msg=k)


def test_fused_runs_in_channels_last_are_the_same_runs(tmp_path, digits, float64):
    cfgs = cell("epochs", channels_last=True, noise_epochs=[])
    E.train_fused(cfgs, [tmp_path / "fused" / f"seed{s}" for s in SEEDS], digits)
    for c in cfgs:
        train(
            RunConfig(**(c.to_dict() | {"channels_last": False})),
            tmp_path / "separate" / f"seed{c.seed}",
            digits,
        )
    assert_same_tables(
        tmp_path / "fused", tmp_path / "separate", "metrics.parquet", "epochs", ["wall_time"]
    )


def test_a_diverging_cell_ends_every_member_as_diverged(tmp_path, digits):
    summaries = E.train_fused(
        cell("epochs", lr=1e20), [tmp_path / f"seed{s}" for s in SEEDS], digits
    )
    assert [s["status"] for s in summaries] == ["diverged"] * len(SEEDS)
    assert all((tmp_path / f"seed{s}" / "final.pt").exists() for s in SEEDS)


def test_an_interrupted_fused_cell_resumes_to_the_same_tables(tmp_path, digits):
    """Bitwise on CPU, like a separate run: per-member checkpoints hold the whole state."""
    cfgs = cell("cbs")
    whole = [tmp_path / "whole" / f"seed{s}" for s in SEEDS]
    parts = [tmp_path / "parts" / f"seed{s}" for s in SEEDS]
    E.train_fused(cfgs, whole, digits)
    with pytest.raises(Interrupted):
        E.train_fused(cfgs, parts, digits, interrupt_at_step=15)
    assert all((p / "checkpoint.pt").exists() for p in parts)
    E.train_fused(cfgs, parts, digits)
    for a, b in zip(whole, parts):
        ta = read_table(a / "metrics.parquet", "cbs_epochs").drop(columns="wall_time")
        tb = read_table(b / "metrics.parquet", "cbs_epochs").drop(columns="wall_time")
        pd.testing.assert_frame_equal(ta, tb, check_exact=True)


def test_learning_rates_train_together_and_a_diverging_one_leaves_the_rest_alone(
    tmp_path, digits, float64
):
    """Figure 8's case: SGD at several η, one of which diverges, in one pack. Each member is
    its separate run; the diverged member's NaNs never reach the others. (η = 1e300: in
    float64 smaller ones leave BatchNorm to absorb the huge weights.)"""
    base = cell("epochs", optimizer="sgd", beta=0.0, noise_epochs=[])[0].to_dict()
    cfgs = [
        RunConfig(**(base | {"lr": lr, "seed": s})) for lr, s in ((0.02, 0), (1e300, 0), (0.05, 1))
    ]
    folders = [tmp_path / "fused" / f"run{i}" for i in range(3)]
    summaries = E.train_fused(cfgs, folders, digits)
    assert [s["status"] for s in summaries] == ["ok", "diverged", "ok"]
    for i, c in enumerate(cfgs):
        assert train(c, tmp_path / "separate" / f"run{i}", digits) == summaries[i]
        a = read_table(folders[i] / "metrics.parquet", "epochs").drop(columns="wall_time")
        b = read_table(tmp_path / "separate" / f"run{i}" / "metrics.parquet", "epochs").drop(
            columns="wall_time"
        )
        pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-12, obj=f"run {i}")


def test_fused_runs_differ_only_in_seed_and_learning_rate(tmp_path, digits):
    cfgs = cell("epochs")
    cfgs[1] = RunConfig(**(cfgs[1].to_dict() | {"batch_size": 64}))
    with pytest.raises(ValueError, match="only in seed and learning rate"):
        E.train_fused(cfgs, [tmp_path / f"seed{s}" for s in SEEDS], digits)
    with pytest.raises(ValueError, match="2 learning rates for 3 members"):
        E.FusedTrainer(members("small_cnn", 10, 1), "sgd", [0.1, 0.2])


def test_a_failed_fused_job_restores_the_members_that_had_finished(
    tmp_path, digits, monkeypatch, caplog
):
    """#17 on the fused path: seed 1 reaches ε at step 84 and leaves the pack, the others are
    interrupted at step 90; after Snakemake deletes the job's outputs, the next attempt
    restores seed 1 and trains only seeds 0 and 2, to the tables of an uninterrupted job."""
    from sgdsmooth.train import train_cells

    real, packs, interrupt = E.train_fused, [], {}

    def spy(cfgs, folders, data=None, **kw):
        packs.append([c.seed for c in cfgs])
        return real(cfgs, folders, data, interrupt_at_step=interrupt.get("step"), **kw)

    monkeypatch.setattr(E, "train_fused", spy)
    run = {k: v for k, v in cell("cbs")[0].to_dict().items() if k != "seed"}

    def tables(name):
        return [str(tmp_path / name / f"seed{s}" / "metrics.parquet") for s in SEEDS]

    train_cells([run], SEEDS, tables("whole"), fuse=True)
    interrupt["step"] = 90
    with pytest.raises(Interrupted):
        train_cells([run], SEEDS, tables("job"), fuse=True)
    for s in SEEDS:  # what Snakemake deletes after a failed job
        (tmp_path / "job" / f"seed{s}" / "metrics.parquet").unlink(missing_ok=True)
    interrupt.clear()
    packs.clear()
    with caplog.at_level("INFO", logger="sgdsmooth.train"):
        train_cells([run], SEEDS, tables("job"), fuse=True)
    assert packs == [[0, 2]]  # seed 1 was not trained again
    assert f"restored {tmp_path / 'job' / 'seed1'}" in caplog.text
    for s in SEEDS:
        ta = read_table(tmp_path / "whole" / f"seed{s}" / "metrics.parquet", "cbs_epochs")
        tb = read_table(tmp_path / "job" / f"seed{s}" / "metrics.parquet", "cbs_epochs")
        pd.testing.assert_frame_equal(
            ta.drop(columns="wall_time"), tb.drop(columns="wall_time"), check_exact=True
        )
