import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import yaml

from sgdsmooth.config import ConfigError, RunConfig
from sgdsmooth.tables import read_metadata, read_table
from sgdsmooth.training import Interrupted, done, loop, open_run, train, train_cells
from sgdsmooth.training.cli import main
from sgdsmooth.training.population import Population

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def epochs_cfg(**kw):
    base = dict(
        protocol="epochs", optimizer="shb", beta=0.9, lr=0.05, batch_size=64, epochs=3, seed=1
    )
    return RunConfig(**(base | kw))


def table(path, schema="epochs"):
    # wall_time is the one column that is not a function of the seed.
    return read_table(path / "metrics.parquet", schema).drop(columns="wall_time")


def test_fixed_epoch_run_records_every_epoch(tmp_path, digits):
    summary = train(epochs_cfg(full_grad_epochs=[3]), tmp_path, digits)
    t = table(tmp_path)
    assert list(t.epoch) == [1, 2, 3] and list(t.step) == [22, 44, 66]
    assert t.test_accuracy.between(0, 1).all() and t.test_accuracy.iloc[-1] > 0.5
    assert t.full_grad_norm_sq.isna().tolist() == [True, True, False]
    assert summary.pop("train_loss") == t.train_loss.iloc[-1]
    assert summary == {
        "status": "ok",
        "steps": 66,
        "sfo": 66 * 64,
        "epochs": 3,
        "reached": False,
        "armed_epoch": None,
        "gate_bound": False,
    }
    assert (tmp_path / "final.pt").exists() and not (tmp_path / "checkpoint.pt").exists()
    meta = read_metadata(tmp_path / "metrics.parquet")
    assert meta["seed"] == 1 and meta["device"] == "cpu" and meta["config"]["optimizer"] == "shb"


def test_same_seed_same_table(tmp_path, digits):
    train(epochs_cfg(), tmp_path / "a", digits)
    train(epochs_cfg(), tmp_path / "b", digits)
    train(epochs_cfg(seed=2), tmp_path / "c", digits)
    pd.testing.assert_frame_equal(table(tmp_path / "a"), table(tmp_path / "b"), check_exact=True)
    assert not table(tmp_path / "a").equals(table(tmp_path / "c"))


@pytest.mark.parametrize("protocol, stop_at", [("epochs", 30), ("epochs", 44), ("cbs", 50)])
def test_interrupted_and_resumed_run_is_bitwise_identical(tmp_path, digits, protocol, stop_at):
    cfg = epochs_cfg(protocol=protocol, epsilon=0.6, max_steps=400, checkpoint_every=1)
    schema = "cbs_epochs" if protocol == "cbs" else "epochs"
    train(cfg, tmp_path / "whole", digits)
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "parts", digits, interrupt_at_step=stop_at)
    assert (tmp_path / "parts" / "checkpoint.pt").exists()
    assert not (tmp_path / "parts" / "metrics.parquet").exists()
    train(cfg, tmp_path / "parts", digits)
    pd.testing.assert_frame_equal(
        table(tmp_path / "whole", schema), table(tmp_path / "parts", schema), check_exact=True
    )
    if protocol == "epochs":
        a = torch.load(tmp_path / "whole" / "final.pt")
        b = torch.load(tmp_path / "parts" / "final.pt")
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_each_epochs_shuffle_and_augmentation_are_drawn_at_its_start_from_the_run_seed(digits):
    """A run's data stream: at the start of each epoch, its shuffle, then the augmentation
    draws of the examples that epoch uses, from one generator seeded with the run's seed
    (so the data do not depend on the population it trains in)."""
    cfg = epochs_cfg(seed=7, augment=True)
    run = open_run(cfg, None, digits)
    g = torch.Generator().manual_seed(7)
    used = run.steps_per_epoch * cfg.batch_size
    for _ in range(2):
        run.begin_epoch()
        perm = torch.randperm(digits.n_train, generator=g)
        draws = run.data.draw(used, g)
        assert torch.equal(run.perm, perm) and run.draws.keys() == draws.keys()
        assert all(torch.equal(run.draws[k], draws[k]) for k in draws)
        assert set(draws) == {"dy", "dx", "flip", "angle"}
        run.begin_epoch()  # drawn once per epoch (a resumed epoch keeps its draws)
        assert torch.equal(run.perm, perm)
        run.perm = None  # the epoch ends (Run.close_epoch)


def test_cbs_stops_exactly_when_the_running_mean_reaches_epsilon(tmp_path, digits):
    cfg = RunConfig(
        protocol="cbs",
        optimizer="shb",
        beta=0.9,
        lr=0.1,
        batch_size=64,
        epsilon=0.3,
        max_steps=2000,
    )
    summary = train(cfg, tmp_path, digits)
    t = table(tmp_path, "cbs_epochs")
    assert summary["status"] == "reached" and summary["reached"]
    assert summary["sfo"] == summary["steps"] * 64
    assert t.step.iloc[-1] == summary["steps"]
    assert t.running_mean.iloc[-1] <= 0.3
    # One step earlier the running mean was still above ε: rerun to T − 1 and look.
    earlier = train(
        RunConfig(**(cfg.to_dict() | {"max_steps": summary["steps"] - 1})), tmp_path / "e", digits
    )
    assert earlier["status"] == "censored"
    assert table(tmp_path / "e", "cbs_epochs").running_mean.iloc[-1] > 0.3


def test_cbs_min_epochs_delays_the_stop(tmp_path, digits):
    cfg = RunConfig(
        protocol="cbs",
        optimizer="shb",
        beta=0.9,
        lr=0.1,
        batch_size=64,
        epsilon=5.0,
        max_steps=2000,
    )
    assert train(cfg, tmp_path / "a", digits)["steps"] == 1  # the first norm is already below 5
    delayed = train(RunConfig(**(cfg.to_dict() | {"min_epochs": 2})), tmp_path / "b", digits)
    assert delayed["steps"] == 2 * (digits.n_train // 64)


def test_cbs_no_run_reaches_epsilon_before_it_has_learned(tmp_path, digits):
    # ε = 5 lies above every gradient norm of this network: the bare rule stops at step 1,
    # at chance loss (ln 10 = 2.30): it measures the initialisation.
    cfg = RunConfig(
        protocol="cbs", optimizer="sgd", lr=0.1, batch_size=64, epsilon=5.0, max_steps=2000
    )
    bare = train(cfg, tmp_path / "bare", digits)
    assert bare["steps"] == 1 and bare["train_loss"] > 2.0
    armed = train(RunConfig(**(cfg.to_dict() | {"learned_loss": 0.5})), tmp_path / "armed", digits)
    rows = table(tmp_path / "armed", "cbs_epochs")
    learned = int((rows.train_loss <= 0.5).to_numpy().argmax())  # the first epoch that learned
    assert (
        armed["status"] == "reached"
        and learned > 0
        and (rows.train_loss.iloc[:learned] > 0.5).all()
    )
    # It stops on the first step after that epoch, not earlier, and has learned; the summary
    # says that the loss threshold, not ε, decided when (gate_bound), and reports the loss
    # of the last complete epoch, not of the one-step partial epoch.
    assert armed["steps"] == (learned + 1) * (digits.n_train // 64) + 1
    assert armed["armed_epoch"] == learned + 1 and armed["gate_bound"] and not bare["gate_bound"]
    assert armed["train_loss"] == rows.train_loss.iloc[learned] <= 0.5


def test_cbs_budget_censors(tmp_path, digits):
    cfg = RunConfig(
        protocol="cbs", optimizer="sgd", lr=0.01, batch_size=8, epsilon=1e-3, max_steps=100
    )
    summary = train(cfg, tmp_path, digits)
    assert summary.pop("train_loss") > 0
    assert summary == {
        "status": "censored",
        "steps": 100,
        "sfo": 800,
        "epochs": 1,
        "reached": False,
        "armed_epoch": 0,
        "gate_bound": False,
    }


def test_divergence_is_recorded_and_not_an_error(tmp_path, digits):
    summary = train(epochs_cfg(optimizer="sgd", lr=1e20, epochs=5), tmp_path, digits)
    assert summary["status"] == "diverged"
    meta = read_metadata(tmp_path / "metrics.parquet")
    assert meta["summary"]["status"] == "diverged"
    assert (tmp_path / "final.pt").exists()  # the rule's output exists; the status says what it is
    assert len(table(tmp_path)) < 5


@pytest.mark.parametrize(
    "change, key",
    [
        (dict(optimizer="adam"), "optimizer"),
        (dict(model="vgg"), "model"),
        (dict(dataset="mnist"), "dataset"),
        (dict(batch_size=5000), "batch_size"),
        (dict(lr=0.0), "lr"),
        (dict(lr=-1.0), "lr"),
        (dict(beta=1.0), "beta"),
        (dict(beta=-0.1), "beta"),
        (dict(epsilon=0.0), "epsilon"),
        # Wrong types are refused by name, not left to fail later with a TypeError.
        (dict(lr="fast"), "lr"),
        (dict(full_grad_epochs=3), "full_grad_epochs"),
        (dict(epochs=2.5), "epochs"),  # would train 3 epochs
        (dict(epochs=3.0), "epochs"),  # a float, even if whole (YAML's 3.0)
        (dict(batch_size=True), "batch_size"),
        (dict(compile="yes"), "compile"),
        (dict(seed=-1), "seed"),
        (dict(noise_batches=1), "noise_batches"),
        # A fixed-epoch run of 10 epochs never reaches epoch 11.
        (dict(full_grad_epochs=[5, 11]), "full_grad_epochs"),
        (dict(noise_epochs=[11]), "noise_epochs"),
        (dict(noise_epochs=[0]), "noise_epochs"),
    ],
)
def test_bad_arguments_name_the_key(change, key):
    with pytest.raises(ConfigError, match=f"^{key}:"):
        RunConfig(**change).validate()


def test_measuring_epochs_of_a_cbs_run_have_no_upper_bound():
    RunConfig(protocol="cbs", epochs=2, noise_epochs=[5], full_grad_epochs=[7]).validate()


def test_a_cbs_run_measures_noise_after_its_noise_epochs_and_where_it_stops(tmp_path, digits):
    """noise.cbs_epochs and noise.cbs_at_stop: C² along the CBS runs (the consistency rows);
    an epoch the run did not finish is not measured, its stop is, at the weights' step."""
    base = dict(protocol="cbs", batch_size=64, epsilon=1e-9, noise_batches=2)
    base |= dict(noise_per_example=0, noise_steps=1, noise_at_stop=True)
    spe = digits.n_train // 64
    long = RunConfig(**base, max_steps=2 * spe + 3, noise_epochs=[1, 2, 5]).validate()
    summary = train(long, tmp_path / "long", digits)
    rows = read_table(tmp_path / "long" / "noise.parquet", "noise")
    assert summary["status"] == "censored" and set(rows.protocol) == {"cbs"}
    assert rows.step.tolist() == [spe, 2 * spe, 2 * spe + 3]  # epochs 1 and 2, then the stop
    assert rows.epoch.tolist() == [1, 2, 3] and (rows.c2 > 0).all()
    short = RunConfig(**base, max_steps=5, noise_epochs=[1]).validate()
    train(short, tmp_path / "short", digits)
    assert read_table(tmp_path / "short" / "noise.parquet", "noise").step.tolist() == [5]
    assert "noise.parquet" in done.run_files(short)
    assert "noise.parquet" not in done.run_files(RunConfig(**base | {"noise_at_stop": False}))


@pytest.mark.parametrize(
    "yaml_text, flags, key",
    [
        ("lr: fast\n", [], "lr"),
        ("full_grad_epochs: 3\n", [], "full_grad_epochs"),
        ("epochs: 2.5\n", [], "epochs"),
        ("", ["--seed", "-1"], "seed"),
    ],
)
def test_command_line_refuses_a_bad_setting_naming_the_key(tmp_path, capsys, yaml_text, flags, key):
    (tmp_path / "run.yaml").write_text(yaml_text)
    argv = ["--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "r"), *flags]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: {key}:")
    assert not (tmp_path / "r").exists()  # refused before anything is written


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="^learning_rate: unknown key"):
        RunConfig.from_dict({"learning_rate": 0.1})


def test_command_line_runs_one_run_from_yaml_and_flags(tmp_path, capsys):
    (tmp_path / "run.yaml").write_text("optimizer: nshb\nbeta: 0.9\nbatch_size: 256\nepochs: 1\n")
    assert (
        main(
            [
                "--config",
                str(tmp_path / "run.yaml"),
                "--out",
                str(tmp_path / "r"),
                "--lr",
                "0.2",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    meta = read_metadata(tmp_path / "r" / "metrics.parquet")
    assert meta["config"]["lr"] == 0.2 and meta["config"]["optimizer"] == "nshb"
    assert meta["config"]["channels_last"] is False
    assert (
        main(
            [
                "--out",
                str(tmp_path / "cl"),
                "--epochs",
                "1",
                "--batch-size",
                "256",
                "--channels-last",
            ]
        )
        == 0
    )
    assert read_metadata(tmp_path / "cl" / "metrics.parquet")["config"]["channels_last"] is True
    assert main(["--out", str(tmp_path / "x"), "--beta", "1.5"]) == 2
    assert "beta:" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_checkpoints_and_a_rerun_resumes_to_the_uninterrupted_table(tmp_path, sig):
    """A real signal to a real process: it leaves a checkpoint, exits 75, and resumes to the
    table of an uninterrupted run. SIGINT is Ctrl-C, which a terminal sends to snakemake and
    its jobs alike. No --threads: the command line's default (1) is the tests' count."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "sgdsmooth.training",
        "--out",
        str(out),
        "--optimizer",
        "sgd",
        "--batch-size",
        "2",
        "--epochs",
        "2",
    ]
    env = {"PYTHONPATH": str(ROOT / "workflow"), "PATH": "/usr/bin:/bin"}
    # As in a terminal's foreground job, whatever this test runs under: SIGINT not ignored.
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(
        cmd, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
    )
    deadline = time.time() + 60
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:  # the epoch-1 checkpoint
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err
    assert f"signal {int(sig)} at step" in err and "1 checkpoint(s) written" in err
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.parquet").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stderr
    assert list(read_table(out / "metrics.parquet", "epochs").epoch) == [1, 2]
    whole = tmp_path / "whole"
    train(RunConfig.from_dict(read_metadata(out / "metrics.parquet")["config"]), whole)
    pd.testing.assert_frame_equal(table(out), table(whole), check_exact=True)
    a, b = torch.load(out / "final.pt"), torch.load(whole / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_command_line_run_sets_its_thread_count(tmp_path, digits, caplog):
    """On CPU the same run rounds differently at 1 and 2 threads from its first epoch: a
    bitwise claim holds at a fixed count, so the command line sets one (default 1) rather
    than take torch's, and a resume at another count says so."""
    cfg = epochs_cfg(epochs=1, batch_size=32)
    train(cfg, tmp_path / "one", digits)  # the tests' count: 1 (conftest)
    torch.set_num_threads(2)
    train(cfg, tmp_path / "two", digits)
    torch.set_num_threads(1)
    assert not table(tmp_path / "one").equals(table(tmp_path / "two"))  # the test can fail
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    env = {"PYTHONPATH": str(ROOT / "workflow"), "PATH": "/usr/bin:/bin"}  # no OMP_NUM_THREADS
    cli = subprocess.run(
        [sys.executable, "-m", "sgdsmooth.training", "--config", str(tmp_path / "run.yaml")]
        + ["--out", str(tmp_path / "cli")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    pd.testing.assert_frame_equal(
        table(tmp_path / "one"), table(tmp_path / "cli"), check_exact=True
    )
    # A checkpoint written at 2 threads, resumed at 1: the log says that the result differs.
    torch.set_num_threads(2)
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "resumed", digits, interrupt_at_step=10)
    torch.set_num_threads(1)
    with caplog.at_level("WARNING", logger="sgdsmooth.training"):
        train(cfg, tmp_path / "resumed", digits)
    assert "written at 2 CPU threads, this session has 1" in caplog.text


def test_deadline_checkpoints_like_a_signal(tmp_path, digits):
    cfg = epochs_cfg(epochs=2)
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "r", digits, deadline=time.time() - 1)  # already past
    assert (tmp_path / "r" / "checkpoint.pt").exists()
    train(cfg, tmp_path / "r", digits)
    train(cfg, tmp_path / "whole", digits)
    pd.testing.assert_frame_equal(
        table(tmp_path / "r"), table(tmp_path / "whole"), check_exact=True
    )


def test_slurm_deadline_only_inside_slurm():
    from sgdsmooth.training import slurm_deadline

    assert slurm_deadline(60, env={}) is None
    job = {"SLURM_JOB_ID": "7"}
    unknown = lambda job_id: None  # noqa: E731  (squeue gives no answer)
    now = time.time()
    d = slurm_deadline(60, env=job, end_time=unknown)
    assert now + 3600 - 600 - 1 <= d <= time.time() + 3600 - 600  # 25 % capped at 10 min
    d = slurm_deadline(1, env=job, end_time=unknown)
    assert now + 40 - 1 <= d <= time.time() + 40  # 25 % of 60 s is below the 20 s floor
    # A retry late in an allocation: the allocation's end counts, not a fresh time limit.
    assert slurm_deadline(1, env=job, end_time=lambda job_id: 1000.0) == 1000.0 - 20


def test_noise_measurements_do_not_disturb_the_run_and_survive_resume(tmp_path, digits):
    measured = epochs_cfg(noise_epochs=[1, 3], noise_per_example=64, noise_batches=4)
    train(epochs_cfg(), tmp_path / "plain", digits)
    train(measured, tmp_path / "measured", digits)
    plain, with_noise = table(tmp_path / "plain"), table(tmp_path / "measured")
    pd.testing.assert_frame_equal(
        plain.drop(columns="full_grad_norm_sq"),
        with_noise.drop(columns="full_grad_norm_sq"),
        check_exact=True,
    )
    rows = read_table(tmp_path / "measured" / "noise.parquet", "noise")
    assert list(rows.epoch) == [1, 3]
    # A noise epoch records K² = ‖∇F_b‖² in the epoch table too: the same number as the noise
    # row's K².
    assert list(with_noise.full_grad_norm_sq.iloc[[0, 2]]) == list(rows.k2) and pd.isna(
        with_noise.full_grad_norm_sq.iloc[1]
    )
    assert (rows.c2 > 0).all() and (rows.k2 > 0).all() and (rows.direction_noise_sq > 0).all()
    assert (rows.delta_empirical == 0.05 * rows.direction_noise_sq**0.5).all()
    with pytest.raises(Interrupted):
        train(measured, tmp_path / "resumed", digits, interrupt_at_step=50)
    train(measured, tmp_path / "resumed", digits)
    again = read_table(tmp_path / "resumed" / "noise.parquet", "noise")
    pd.testing.assert_frame_equal(
        rows.drop(columns="seconds"), again.drop(columns="seconds"), check_exact=True
    )


# -- speed options (models.Executor) ---------------------------------------------------
def population_of_one(digits, **options):
    """A fresh run of ``epochs_cfg(**options)`` as its loop trains it: a population of one."""
    cfg = epochs_cfg(**options)
    run = open_run(cfg, None, digits)
    run.begin_epoch()
    return run, Population([run], loop.executor_for(cfg))


def first_losses(digits, steps=4, **options):
    run, pop = population_of_one(digits, **options)
    for _ in range(steps):
        pop.train_step()
    pop.take()
    return torch.tensor(run.trace["loss"])


def test_channels_last_trains_the_same_run(tmp_path, digits, float64, monkeypatch):
    train(epochs_cfg(epochs=1), tmp_path / "nchw", digits)
    train(epochs_cfg(epochs=1, channels_last=True), tmp_path / "nhwc", digits)
    pd.testing.assert_frame_equal(
        table(tmp_path / "nchw"), table(tmp_path / "nhwc"), rtol=1e-9, atol=0
    )
    # ... and it does run in NHWC: every convolution's kernel is NHWC, and so is every
    # output but the first's (one input channel: that layer's layouts coincide).
    real, seen = torch.nn.functional.conv2d, {}

    def spy(x, weight, *args, **kw):
        out = real(x, weight, *args, **kw)
        seen[option].append((weight, out))
        return out

    monkeypatch.setattr(torch.nn.functional, "conv2d", spy)
    for option in (False, True):
        seen[option] = []
        population_of_one(digits, channels_last=option)[1].train_step()
    nhwc = [
        [t.is_contiguous(memory_format=torch.channels_last) for t in pair] for pair in seen[True]
    ]
    assert nhwc == [[True, False], [True, True], [True, True]]
    assert all(out.is_contiguous() and weight.is_contiguous() for weight, out in seen[False])


def test_compiled_forward_computes_the_same_steps(digits):
    assert isinstance(
        population_of_one(digits, compile=True)[1].forward, torch._dynamo.OptimizedModule
    )
    torch.testing.assert_close(
        first_losses(digits, compile=True), first_losses(digits), rtol=1e-5, atol=1e-6
    )


def test_bf16_autocast_rounds_differently_but_trains_the_same_problem(digits):
    fp32, bf16 = first_losses(digits), first_losses(digits, precision="bf16")
    assert not torch.equal(fp32, bf16)  # the option does something
    torch.testing.assert_close(bf16, fp32, rtol=2e-2, atol=0)
    with pytest.raises(ConfigError, match="precision"):
        epochs_cfg(precision="fp16").validate()


# -- a failed job keeps its finished runs (done-states) ---------------------------------
JOB_CELL = dict(
    protocol="epochs",
    optimizer="shb",
    beta=0.9,
    lr=0.05,
    batch_size=64,
    epochs=2,
    noise_epochs=[2],
    noise_batches=2,
    noise_per_example=16,
)


def job_tables(folder, seeds=(0, 1)):
    return [str(folder / f"seed{s}" / "metrics.parquet") for s in seeds]


def delete_outputs(folder, seeds=(0, 1)):
    """What Snakemake does to a failed job: every declared output goes, nothing else."""
    for s in seeds:
        for name in ("metrics.parquet", "final.pt", "noise.parquet"):
            (folder / f"seed{s}" / name).unlink(missing_ok=True)


@pytest.fixture
def trained_seeds(monkeypatch):
    """The seeds that ``train_cells`` trains (one population each: ``together`` is off);
    ``interrupt[seed]`` stops that seed's run at a step, as a signal would."""
    real, calls, interrupt = loop._train_population, [], {}

    def spy(runs, executor, interrupt_at_step, *args):
        (run,) = runs
        calls.append(run.cfg.seed)
        return real(runs, executor, interrupt.get(run.cfg.seed), *args)

    monkeypatch.setattr(loop, "_train_population", spy)
    return calls, interrupt


def assert_same_runs(a, b, seeds=(0, 1)):
    for s in seeds:
        pd.testing.assert_frame_equal(
            table(a / f"seed{s}"), table(b / f"seed{s}"), check_exact=True
        )
        na = read_table(a / f"seed{s}" / "noise.parquet", "noise").drop(columns="seconds")
        nb = read_table(b / f"seed{s}" / "noise.parquet", "noise").drop(columns="seconds")
        pd.testing.assert_frame_equal(na, nb, check_exact=True)
        wa, wb = torch.load(a / f"seed{s}" / "final.pt"), torch.load(b / f"seed{s}" / "final.pt")
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_failed_job_restores_its_finished_seeds_instead_of_retraining(
    tmp_path, trained_seeds, caplog
):
    """#17: seed 0 finishes, seed 1 is interrupted, Snakemake deletes the job's outputs; the
    next attempt restores seed 0 from its done-state, resumes seed 1 from its checkpoint, and
    the tables are those of an uninterrupted job."""
    calls, interrupt = trained_seeds
    train_cells([JOB_CELL], [0, 1], job_tables(tmp_path / "whole"))
    calls.clear()
    interrupt[1] = 30
    with pytest.raises(Interrupted):
        train_cells([JOB_CELL], [0, 1], job_tables(tmp_path / "job"))
    assert calls == [0, 1]
    delete_outputs(tmp_path / "job")
    assert (tmp_path / "job" / "seed1" / "checkpoint.pt").exists()
    calls.clear()
    interrupt.clear()
    with caplog.at_level("INFO", logger="sgdsmooth.training"):
        summaries = train_cells([JOB_CELL], [0, 1], job_tables(tmp_path / "job"))
    assert calls == [1]  # seed 0 was not trained again
    assert f"restored {tmp_path / 'job' / 'seed0'}" in caplog.text
    assert "discarding" not in caplog.text
    assert [s["status"] for s in summaries] == ["ok", "ok"]
    assert_same_runs(tmp_path / "whole", tmp_path / "job")


def test_a_foreign_or_stale_done_state_is_not_used(tmp_path, trained_seeds, caplog, monkeypatch):
    """A done-state copied from another seed's folder (foreign), or written by other code
    (stale), or whose file was replaced, is discarded with a warning and the run trained."""
    import shutil

    calls, _ = trained_seeds
    job = tmp_path / "job"
    train_cells([JOB_CELL], [0, 1], job_tables(job))
    delete_outputs(job)
    # Foreign: seed 0's done-state put in seed 1's folder.
    shutil.rmtree(job / "seed1" / ".done")
    shutil.copytree(job / "seed0" / ".done", job / "seed1" / ".done")
    calls.clear()
    with caplog.at_level("INFO", logger="sgdsmooth.training"):
        train_cells([JOB_CELL], [0, 1], job_tables(job))
    assert calls == [1]
    assert "seed1/.done, not used: its manifest is of another run: seed 0 (asked: 1)" in caplog.text
    whole = tmp_path / "whole"
    train_cells([JOB_CELL], [0, 1], job_tables(whole))
    assert_same_runs(whole, job)
    # A replaced file: the manifest and the table's metadata are right, its weights are not.
    delete_outputs(job)
    torch.save({"not": torch.zeros(1)}, job / "seed0" / ".done" / "final.pt")
    calls.clear()
    caplog.clear()
    with caplog.at_level("INFO", logger="sgdsmooth.training"):
        train_cells([JOB_CELL], [0, 1], job_tables(job))
    assert calls == [0]
    assert "final.pt is not the file it recorded" in caplog.text
    # Stale: made by another version of the code.
    delete_outputs(job)
    monkeypatch.setattr(done, "code_version", lambda: "0.0.0+other")
    calls.clear()
    caplog.clear()
    with caplog.at_level("INFO", logger="sgdsmooth.training"):
        train_cells([JOB_CELL], [0, 1], job_tables(job))
    assert calls == [0, 1]
    assert caplog.text.count("was made by code") == 2 and "restored" not in caplog.text
    assert_same_runs(whole, job)


def test_a_truncated_checkpoint_is_set_aside_and_the_run_starts_afresh(tmp_path, digits, caplog):
    """#17: a truncated checkpoint.pt failed every retry with OSError until deleted by hand."""
    cfg = epochs_cfg(epochs=2)
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "r", digits, interrupt_at_step=30)
    ckpt = tmp_path / "r" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with caplog.at_level("WARNING", logger="sgdsmooth.training"):
        train(cfg, tmp_path / "r", digits)
    assert "cannot read" in caplog.text and "the run starts afresh" in caplog.text
    aside = [p.name for p in (tmp_path / "r").iterdir() if p.name.startswith("checkpoint.pt")]
    assert len(aside) == 1 and aside[0].startswith("checkpoint.pt.corrupt-")
    train(cfg, tmp_path / "whole", digits)
    pd.testing.assert_frame_equal(
        table(tmp_path / "r"), table(tmp_path / "whole"), check_exact=True
    )
