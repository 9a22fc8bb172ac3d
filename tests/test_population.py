"""A population (sgdsmooth.training.population) computes each member's own run: its tables
are those of the run trained alone, whoever else trains beside it and whenever they leave.

The comparisons run in float64 (the ``float64`` fixture): a population of K > 1 computes its
convolutions by im2col and batched GEMMs, a run alone by the ordinary kernels, so the two
round differently; in float32 training amplifies that to 1e-3 within 20 steps and moves a
CBS stop, in float64 it stays below 1e-10 relative."""

import math
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sgdsmooth.config import ConfigError, RunConfig
from sgdsmooth.models import make_model
from sgdsmooth.optim import make_optimizer
from sgdsmooth.tables import read_metadata, read_table
from sgdsmooth.training import (
    Interrupted,
    loop,
    open_run,
    stacked,
    train,
    train_cells,
    train_many,
)
from sgdsmooth.training.device import configure
from sgdsmooth.training.population import Population
from sgdsmooth.training.run import stop_hits

RTOL = 1e-10

# Three optimizers, seeds and learning rates, and four ways to stop (b = 64: 22 steps an
# epoch on digits): alone, the SHB run reaches ε at step 7, the gated SGD run (ε above every
# norm, armed by its first epoch's loss) at step 23, the NSHB run reaches ε at step 24 and
# the last SGD run is censored at step 40.
CBS = [
    dict(optimizer="shb", lr=0.05, seed=1, epsilon=0.68),
    dict(optimizer="sgd", lr=0.3, seed=3, epsilon=5.0, learned_loss=1.8),
    dict(optimizer="nshb", lr=0.1, seed=2, epsilon=0.69),
    dict(optimizer="sgd", lr=0.1, seed=0, epsilon=0.5, max_steps=40),
]
CBS_STEPS = [7, 23, 24, 40]
# Fixed epochs: three optimizers ending after 1, 3 and 2 epochs, augmented (each member
# draws its own crops, flips and rotations), with K² and noise measurements on the way.
EPOCHS = [
    dict(optimizer="sgd", lr=0.1, seed=0, epochs=1, full_grad_epochs=[1]),
    dict(optimizer="shb", lr=0.05, seed=1, epochs=3, noise_epochs=[2]),
    dict(optimizer="nshb", lr=0.1, seed=2, epochs=2, full_grad_epochs=[2]),
]
EPOCHS_STEPS = [10, 30, 20]  # on 640 of the images (``small``): 10 steps an epoch


def configs(protocol, members, **common):
    base = dict(protocol=protocol, beta=0.9, batch_size=64, max_steps=60, augment=False)
    if protocol == "epochs":
        base |= dict(augment=True, noise_batches=2, noise_per_example=16)
    return [RunConfig(**(base | common | m)).validate() for m in members]


@pytest.fixture(scope="module")
def small(digits):
    """640 of the training images (and 160 test images): the fixed-epoch runs' data."""
    return digits.subset(640)


@pytest.fixture
def sizes(monkeypatch):
    """The sizes of the populations made, in order (every (re)stacking)."""
    real, made = Population.__init__, []

    def spy(self, runs, *args, **kw):
        made.append(len(runs))
        real(self, runs, *args, **kw)

    monkeypatch.setattr(Population, "__init__", spy)
    return made


def table(folder, name="metrics.parquet", schema=None):
    schema = schema or read_metadata(folder / name)["config"]["protocol"]
    schema = {"cbs": "cbs_epochs", "epochs": "epochs"}.get(schema, schema)
    drop = "seconds" if schema == "noise" else "wall_time"
    return read_table(folder / name, schema).drop(columns=drop)


def assert_close_weights(a: dict, b: dict, rtol=RTOL, what=""):
    """Each tensor of ``a`` equals ``b``'s to ``rtol`` relative to its norm (elementwise
    relative error means nothing for weights that pass near zero), infinities and NaNs
    where ``b``'s are."""
    assert list(a) == list(b)
    for k in a:
        x, y = a[k], b[k]
        if not y.is_floating_point():  # BatchNorm's step counters
            assert torch.equal(x, y), f"{what} {k}"
            continue
        bad = ~y.isfinite()
        assert torch.equal(x[bad].nan_to_num(), y[bad].nan_to_num()), f"{what} {k}: inf, NaN"
        assert torch.equal(~x.isfinite(), bad), f"{what} {k}: inf or NaN elsewhere"
        x, y = x[~bad], y[~bad]
        scale = y.abs().max().clamp_min(torch.finfo(y.dtype).tiny) if y.numel() else 1.0
        err = float((x - y).div(scale).norm() / y.div(scale).norm().clamp_min(1e-300))
        assert err <= rtol, f"{what} {k}: relative error {err:.1e}"


def assert_same_runs(together, alone, cfgs, rtol=RTOL, only=None):
    """Every table of each run in ``together`` equals its run's in ``alone``, to ``rtol``."""
    for i, c in enumerate(cfgs):
        if only is not None and i not in only:
            continue
        a, b = together / f"run{i}", alone / f"run{i}"
        ta, tb = table(a), table(b)
        assert list(ta.step) == list(tb.step), f"run {i}"
        pd.testing.assert_frame_equal(ta, tb, rtol=rtol, atol=0, obj=f"run {i} metrics")
        if c.noise_epochs:
            pd.testing.assert_frame_equal(
                table(a, "noise.parquet", "noise"),
                table(b, "noise.parquet", "noise"),
                rtol=rtol,
                atol=0,
                obj=f"run {i} noise",
            )
        if c.protocol == "epochs":
            assert_close_weights(
                torch.load(a / "final.pt"), torch.load(b / "final.pt"), rtol, f"run {i}"
            )


def folders(root, n):
    return [root / f"run{i}" for i in range(n)]


def without_loss(summary):
    return {k: v for k, v in summary.items() if k != "train_loss"}


# -- 1. a member's tables are its run's alone ------------------------------------------
@pytest.mark.parametrize(
    "protocol, members, steps", [("cbs", CBS, CBS_STEPS), ("epochs", EPOCHS, EPOCHS_STEPS)]
)
def test_each_member_writes_the_tables_of_its_run_alone(
    tmp_path, digits, small, float64, sizes, protocol, members, steps
):
    """SGD, SHB and NSHB at different seeds and η in one population, BatchNorm in training
    mode, members stopping at different steps (and leaving: the population shrinks): each
    writes the metrics, noise table and final weights of its run trained alone."""
    cfgs = configs(protocol, members)
    data = digits if protocol == "cbs" else small
    together = train_many(cfgs, folders(tmp_path / "together", len(cfgs)), data)
    assert [s["steps"] for s in together] == steps  # they do stop apart
    assert sizes == list(range(len(cfgs), 0, -1))  # and each stop shrinks the population
    alone = [train(c, f, data) for c, f in zip(cfgs, folders(tmp_path / "alone", len(cfgs)))]
    assert [without_loss(s) for s in together] == [without_loss(s) for s in alone]
    for s, t in zip(together, alone):
        assert s["train_loss"] == pytest.approx(t["train_loss"], rel=RTOL, abs=0)
    assert_same_runs(tmp_path / "together", tmp_path / "alone", cfgs)


def test_members_that_differ_in_augmentation_each_get_their_own_data(tmp_path, small, float64):
    """A population takes its batches from one data set: a member that augments and one
    that does not must not share it."""
    cfgs = configs(
        "epochs",
        [
            dict(optimizer="sgd", lr=0.1, seed=0, epochs=1, augment=False),
            dict(optimizer="shb", lr=0.05, seed=1, epochs=1, augment=True),
        ],
    )
    train_many(cfgs, folders(tmp_path / "together", 2), small)
    for c, f in zip(cfgs, folders(tmp_path / "alone", 2)):
        train(c, f, small)
    assert_same_runs(tmp_path / "together", tmp_path / "alone", cfgs)


def test_a_population_in_channels_last_trains_the_runs_alone(tmp_path, small, float64, sizes):
    """NHWC inputs through the stacked convolutions (K = 3, 2) and NHWC kernels once one
    member is left (K = 1): the same runs as alone in NCHW."""
    nhwc = dict(channels_last=True, noise_epochs=[], full_grad_epochs=[])
    cfgs = [RunConfig(**(c.to_dict() | nhwc)) for c in configs("epochs", EPOCHS)]
    train_many(cfgs, folders(tmp_path / "together", 3), small)
    assert sizes == [3, 2, 1]
    for c, f in zip(cfgs, folders(tmp_path / "alone", 3)):
        train(RunConfig(**(c.to_dict() | {"channels_last": False})), f, small)
    assert_same_runs(tmp_path / "together", tmp_path / "alone", cfgs)


def trained_runs(cfgs, data, **options):
    """The runs of ``cfgs`` trained together (writing nothing), for their state."""
    runs = [open_run(c, None, data) for c in cfgs]
    loop.train_runs(runs, **options)
    return runs


def test_a_member_stopping_between_checks_keeps_its_weights_at_the_stop(digits, float64):
    """Checked every 25 steps (as on a GPU), the SHB member reaches ε at step 7 and the host
    sees it at step 22 (the epoch's end), the SGD and NSHB members at steps 23 and 24 and the
    host at step 40: in between they are frozen on the device, so their weights, directions
    and the noise measured where they stop are those of a check after every step."""
    cfgs = configs("cbs", CBS, noise_at_stop=True, noise_batches=2, noise_per_example=16)
    late = trained_runs(cfgs, digits, check_every=25)
    each = trained_runs(cfgs, digits, check_every=1)
    assert [r.summary()["steps"] for r in late] == CBS_STEPS
    assert [r.step for r in late] == [22, 40, 40, 40]  # where the host saw them stop
    for i, (a, b) in enumerate(zip(late, each)):
        assert without_loss(a.summary()) == without_loss(b.summary())
        pd.testing.assert_frame_equal(
            pd.DataFrame(a.rows).drop(columns="wall_time"),
            pd.DataFrame(b.rows).drop(columns="wall_time"),
            rtol=RTOL,
            atol=0,
            obj=f"run {i} metrics",
        )
        noise_a, noise_b = (pd.DataFrame(r.noise_rows).drop(columns="seconds") for r in (a, b))
        assert list(noise_a.step) == [CBS_STEPS[i]]
        pd.testing.assert_frame_equal(noise_a, noise_b, rtol=RTOL, atol=0, obj=f"run {i} noise")
        # BatchNorm's running statistics are left to move (nothing of a CBS run reads them)
        weights = {k: v for k, v in a.weights.items() if "running" not in k and "batches" not in k}
        assert_close_weights(weights, {k: b.weights[k] for k in weights}, what=f"run {i}")
        assert_close_weights(a.directions, b.directions, what=f"run {i} direction")


def test_a_population_refuses_to_go_on_when_its_device_rule_disagrees(digits):
    """Should the device freeze a member whose run has not stopped (or the reverse), its
    weights would be wrong: the check after the steps says so instead of going on."""
    cfgs = configs("cbs", CBS[:2])
    runs = [open_run(c, None, digits) for c in cfgs]
    pop = Population(runs, loop.executor_for(cfgs[0]), freeze=True)
    pop.load_epoch()
    pop._eps.fill_(math.inf)  # the device's rule fires at once, the runs' does not
    pop._min_t.zero_()
    pop._armed.fill_(True)
    pop.train_step()
    wrong = "disagrees.*shb η 0.05 β 0.9 seed 1 .run: training, device: stopped"
    with pytest.raises(RuntimeError, match=wrong):
        pop.take()


@pytest.mark.parametrize("key, value", [("deterministic", False), ("precision", "bf16")])
def test_runs_that_differ_in_a_setting_of_the_process_are_refused(tmp_path, digits, key, value):
    """Data, device, kernels and executor are set once for a process's runs: a run that asks
    for other ones is refused, naming the key, before anything trains."""
    cfgs = configs("cbs", CBS[:2])
    cfgs[1] = RunConfig(**(cfgs[1].to_dict() | {key: value}))
    with pytest.raises(ConfigError, match=f"^{key}: runs trained in one process must agree"):
        train_many(cfgs, folders(tmp_path, 2), digits)
    assert not any(f.exists() for f in folders(tmp_path, 2))


def test_a_run_looks_at_the_steps_of_a_check_in_order(digits):
    """Steps handed over together read as if checked one by one: a stop before the first
    non-finite loss stands (a frozen member's later steps do not count), a non-finite loss
    before the stop ends the run as diverged."""
    cfg = configs("cbs", [dict(optimizer="sgd", lr=0.1, seed=0, epsilon=0.5)])[0]
    nan = math.nan
    for losses, norms, status, stop in [
        ([1.0, 1.0, nan, 1.0], [0.9, 0.05, 0.1, 0.1], "reached", 2),  # (0.9 + 0.05)/2 ≤ 0.5
        ([1.0, nan, 1.0, 1.0], [0.9, 0.05, 0.1, 0.1], "diverged", None),
        ([1.0, 1.0, 1.0, 1.0], [0.9, 0.9, 0.9, 0.9], None, None),
    ]:
        run = open_run(cfg, None, digits)
        run.step = 4
        run.record(torch.tensor(losses), torch.tensor(norms), torch.zeros(4))
        assert (run.status, run.stop_step) == (status, stop)
        assert len(run.trace["loss"]) == 4


def test_a_fixed_epoch_population_past_the_cbs_step_budget_still_checks_every_few_steps(
    small, monkeypatch
):
    """``max_steps`` is the CBS protocol's budget: a fixed-epoch run past it is looked at
    every ``check_every`` steps (here: at its epochs' ends), not after every step."""
    cfgs = configs("epochs", [dict(optimizer="sgd", lr=0.1, seed=0, epochs=2, max_steps=3)])
    looked = []
    real = loop.Run.record

    def spy(self, losses, *args):
        looked.append(len(losses))
        real(self, losses, *args)

    monkeypatch.setattr(loop.Run, "record", spy)
    trained_runs(cfgs, small, check_every=25)
    assert looked == [10, 10]  # 10 steps an epoch


def test_a_frozen_member_that_meets_a_non_finite_loss_is_reported(digits):
    """Its zero gradient would have been NaN: the check says so instead of going on."""
    cfgs = configs("cbs", CBS[:2])
    runs = [open_run(c, None, digits) for c in cfgs]
    pop = Population(runs, loop.executor_for(cfgs[0]), freeze=True)
    r = runs[0]
    r.status, r.stop_step, r.step = "reached", 1, 3
    r.trace["loss"] = [1.0, math.nan, 1.0]
    pop._moving[0] = False
    with pytest.raises(RuntimeError, match="shb η 0.05 β 0.9 seed 1 .frozen at step 1, then a"):
        pop._check_rule()


def test_the_stopping_rule_fires_when_the_running_mean_reaches_epsilon_after_min_steps():
    """(1/t)·Σ‖g_k‖ ≤ ε, equality included, and only from t = min_steps on."""
    sums = torch.tensor([3.0, 4.0, 4.5, 4.6], dtype=torch.float64)
    t = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    assert stop_hits(sums, t, 1.5, 0).tolist() == [False, False, True, True]
    assert stop_hits(sums, t, 1.5, 4).tolist() == [False, False, False, True]
    assert stop_hits(sums, t, 5.0, 2).tolist() == [False, True, True, True]


# -- 2. a population of one is the plain network ---------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "shb", "nshb"])
def test_a_population_of_one_takes_the_steps_of_the_plain_network(digits, float64, optimizer):
    """models.make_model + optim.make_optimizer (Momentum) on the run's own batches (its
    shuffle and augmentation draws), against the population's step: the same losses,
    gradient norms, correct counts, weights, BatchNorm statistics and directions."""
    cfg = RunConfig(optimizer=optimizer, beta=0.9, lr=0.1, batch_size=32, seed=4, augment=True)
    run = open_run(cfg, None, digits)
    run.begin_epoch()
    pop = Population([run], loop.executor_for(cfg))
    perm, draws, b, n = run.perm.clone(), dict(run.draws), cfg.batch_size, 25
    assert draws  # the batches are augmented
    for _ in range(n):
        pop.train_step()
    pop.take()
    pop.release()

    torch.manual_seed(cfg.seed)
    net = make_model(cfg.model, digits.num_classes, digits.in_channels)
    opt = make_optimizer(optimizer, net.parameters(), cfg.lr, cfg.beta)
    losses, norms, correct = [], [], []
    for t in range(n):
        rows = slice(t * b, (t + 1) * b)
        x, y = run.data.batch(perm[rows], {k: v[rows] for k, v in draws.items()})
        opt.zero_grad(set_to_none=True)
        out = net(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        losses.append(loss.item())
        norms.append(torch.stack([p.grad.pow(2).sum() for p in net.parameters()]).sum().sqrt())
        correct.append(int((out.argmax(1) == y).sum()))
        opt.step()
    torch.testing.assert_close(
        torch.tensor(run.trace["loss"]), torch.tensor(losses), rtol=RTOL, atol=0
    )
    torch.testing.assert_close(
        torch.tensor(run.trace["norm"]), torch.stack(norms), rtol=RTOL, atol=0
    )
    assert run.trace["correct"] == correct
    assert_close_weights(run.weights, net.state_dict(), what="weights")
    directions = {
        name: opt.state[p]["direction"] if optimizer != "sgd" else p.grad
        for name, p in net.named_parameters()
    }
    assert_close_weights(run.directions, directions, what="direction")


MODELS = [
    ("small_cnn", 10, (5, 1, 8, 8)),
    ("mnist_cnn", 10, (4, 1, 28, 28)),
    ("resnet18", 100, (2, 3, 12, 12)),
]


def members(name, classes, channels, seeds=(0, 1, 2)):
    out = []
    for s in seeds:
        torch.manual_seed(s)
        out.append(make_model(name, classes, channels))
    return out


@pytest.mark.parametrize("name, classes, shape", MODELS, ids=[m[0] for m in MODELS])
def test_the_stacked_forward_is_each_members_forward_in_both_modes(float64, name, classes, shape):
    """K members as one network on member-major batches: each member's rows of the output
    are its own network's output, in training mode (per-member batch statistics, and the
    running statistics they update) and in evaluation mode."""
    nets = members(name, classes, shape[1])
    net = stacked.stack(nets)
    g = torch.Generator().manual_seed(10)
    xs = [torch.randn(shape, generator=g) for _ in nets]
    for training in (True, False):  # training first: evaluation then uses updated statistics
        for m in (net, *nets):
            m.train(training)
        with torch.no_grad():
            out = net(torch.cat(xs)).view(len(nets), shape[0], -1)
            for i, (m, x) in enumerate(zip(nets, xs)):
                torch.testing.assert_close(out[i], m(x), rtol=1e-12, atol=1e-12, msg=f"{i}")
    state = net.state_dict()
    for i, m in enumerate(nets):  # the running statistics too
        assert_close_weights(stacked.member_state(state, i), m.state_dict(), 1e-12, f"{i}")


def test_member_state_inverts_stacked_state_in_the_stacked_networks_names():
    nets = members("small_cnn", 10, 1)
    states = [m.state_dict() for m in nets]
    both = stacked.stacked_state(states)
    assert stacked.members(both) == len(nets)
    for i, s in enumerate(states):
        back = stacked.member_state(both, i)
        assert list(back) == list(s) and all(torch.equal(back[k], s[k]) for k in s)
    # The stacked network's own state dict is exactly that, under the members' names.
    own = stacked.stack(nets).state_dict()
    assert list(own) == list(both) and all(torch.equal(own[k], both[k]) for k in both)


# -- 3. a diverging member leaves the others alone -------------------------------------
def test_a_diverging_member_ends_diverged_and_leaves_the_others_their_runs(
    tmp_path, small, float64
):
    """Figure 8's case: SGD at several η, one of which diverges. Its NaNs never reach the
    others (η = 1e300: in float64 smaller ones leave BatchNorm to absorb the huge weights)."""
    cfgs = configs(
        "epochs",
        [dict(lr=0.02, seed=0), dict(lr=1e300, seed=0), dict(lr=0.05, seed=1, optimizer="nshb")],
        optimizer="sgd",
        epochs=2,
        augment=False,
    )
    together = train_many(cfgs, folders(tmp_path / "together", 3), small)
    assert [s["status"] for s in together] == ["ok", "diverged", "ok"]
    assert (tmp_path / "together" / "run1" / "final.pt").exists()  # its status says what it is
    alone = [train(c, f, small) for c, f in zip(cfgs, folders(tmp_path / "alone", 3))]
    assert [without_loss(s) for s in together] == [without_loss(s) for s in alone]
    ok = [0, 2]  # (the diverged member's weights are infinities and NaNs, either way)
    assert_same_runs(tmp_path / "together", tmp_path / "alone", cfgs, only=ok)
    assert [len(table(f)) for f in folders(tmp_path / "together", 3)] == [2, 0, 2]
    pd.testing.assert_frame_equal(
        table(tmp_path / "together" / "run1"), table(tmp_path / "alone" / "run1")
    )
    assert not all(
        t.isfinite().all() for t in torch.load(tmp_path / "alone/run1/final.pt").values()
    )


# -- 4. interrupted populations and failed jobs ----------------------------------------
def test_an_interrupted_population_resumes_to_the_uninterrupted_tables(tmp_path, digits):
    """Bitwise on CPU: every member's checkpoint holds its whole state (weights, direction,
    generator, this epoch's data, the steps of the epoch so far), taken mid-epoch."""
    cfgs = configs("cbs", CBS)
    whole, parts = folders(tmp_path / "whole", 4), folders(tmp_path / "parts", 4)
    train_many(cfgs, whole, digits)
    with pytest.raises(Interrupted, match="4 checkpoint"):
        train_many(cfgs, parts, digits, interrupt_at_step=5)
    assert all((p / "checkpoint.pt").exists() for p in parts)
    train_many(cfgs, parts, digits)
    for a, b in zip(whole, parts):
        pd.testing.assert_frame_equal(table(a), table(b), check_exact=True)


@pytest.fixture
def interrupt(monkeypatch):
    """``interrupt["step"]``: where ``train_cells``'s training stops, as a signal would."""
    real, at = loop.train_many, {}

    def spy(*args, **kw):
        return real(*args, **kw, interrupt_at_step=at.get("step"))

    monkeypatch.setattr(loop, "train_many", spy)
    return at


def test_a_failed_job_restores_the_members_that_had_finished(tmp_path, interrupt, sizes, caplog):
    """#17 for a population: the first member to stop leaves; the job is interrupted after
    that, before the next stop, and Snakemake deletes its outputs. The next attempt restores
    that member from its done-state and trains only the others, from their checkpoints, to
    the tables of an uninterrupted job."""
    cells = [{k: v for k, v in c.to_dict().items() if k != "seed"} for c in configs("cbs", CBS)]

    def tables(name):
        return [str(tmp_path / name / f"cell{i}" / "metrics.parquet") for i in range(len(cells))]

    whole = train_cells(cells, [0], tables("whole"), together=True)
    steps = [s["steps"] for s in whole]
    first, second = sorted(steps)[:2]
    assert second > first + 2  # (float32 and seed 0 for all: the steps are not CBS_STEPS)
    interrupt["step"] = (first + second) // 2
    with pytest.raises(Interrupted, match=f"{len(cells) - 1} checkpoint"):
        train_cells(cells, [0], tables("job"), together=True)
    for path in tables("job"):  # what Snakemake deletes after a failed job
        Path(path).unlink(missing_ok=True)
    interrupt.clear()
    sizes.clear()
    with caplog.at_level("INFO", logger="sgdsmooth.training"):
        summaries = train_cells(cells, [0], tables("job"), together=True)
    done = steps.index(first)
    assert f"restored {tmp_path / 'job' / f'cell{done}'}" in caplog.text
    assert sizes[0] == len(cells) - 1  # the finished member was not trained again
    assert summaries == whole
    for i in range(len(cells)):
        a, b = tmp_path / "whole" / f"cell{i}", tmp_path / "job" / f"cell{i}"
        pd.testing.assert_frame_equal(table(a), table(b), check_exact=True)


# -- 5. determinism is a setting, and recorded ------------------------------------------
@pytest.fixture
def determinism():
    """Put torch's process-wide determinism back as it was."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.utils.deterministic.fill_uninitialized_memory = saved[2]
    if saved[3] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[3]


@pytest.mark.parametrize("deterministic", [False, True])
def test_the_deterministic_setting_is_applied_and_recorded_in_every_run(
    tmp_path, small, determinism, deterministic
):
    torch.use_deterministic_algorithms(not deterministic)  # the other way round before
    cfgs = configs("epochs", EPOCHS[:2], epochs=1, noise_epochs=[], deterministic=deterministic)
    train_many(cfgs, folders(tmp_path, 2), small)
    assert torch.are_deterministic_algorithms_enabled() is deterministic
    for f in folders(tmp_path, 2):
        meta = read_metadata(f / "metrics.parquet")
        assert meta["config"]["deterministic"] is deterministic
        assert meta["deterministic"] is deterministic


def test_configure_switches_torchs_deterministic_algorithms(determinism):
    for wanted in (True, False, True):
        configure(torch.device("cpu"), wanted)
        assert torch.are_deterministic_algorithms_enabled() is wanted
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"]  # set before cuBLAS could start
