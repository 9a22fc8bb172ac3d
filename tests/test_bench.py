"""The benchmark scripts run (at tiny sizes) and write what they promise; no timing asserted."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # the scripts import each other


def run(*args):
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_train_throughput_appends_a_record(tmp_path):
    results = tmp_path / "tt.jsonl"
    out = run(
        "bench/train_throughput.py",
        "--model",
        "small_cnn",
        "--batch-sizes",
        "8",
        "--steps",
        "2",
        "--members",
        "2",
        "--images",
        "512",
        "--channels-last",
        "--config",
        "config/config.yaml",
        "--results",
        str(results),
    )
    assert "fused" in out
    (record,) = [json.loads(line) for line in results.read_text().splitlines()]
    (row,) = record["rows"]
    assert row["batch_size"] == 8 and row["fused_per_model"] == row["fused_total"] / 2
    assert record["options"] == {
        "precision": "fp32",
        "channels_last": True,
        "compile": False,
        "cuda_graph": False,
    }
    (hours,) = record["projected_hours"].values()
    assert hours > 0 and "projected time of config/config.yaml" in out
    assert all(row[k] > 0 for k in ("baseline", "single", "fused_total"))


def test_workload_of_the_article_grid():
    out = run("bench/workload.py", "config/paper.yaml")
    last = out.strip().splitlines()
    # 518 fixed-epoch and 222 CBS runs: (3 × 11 + 4 × 13 − 11) cells × 7 and × 3 seeds.
    assert any(line.split()[:3] == ["all", "518", "222"] for line in last)
    assert "GPU-hours" in last[-1]
    # b = 2 is Figure 8 only, one fused group per protocol: a device step trains all 4 η ×
    # seeds, so it takes one run's steps: (200 + 10 epochs) × 25,000 steps an epoch.
    (b2,) = [line.split() for line in last if line.split()[0] == "2"]
    assert int(b2[4].replace(",", "")) == 4 * (200 * 7 + 10 * 3) * 25_000  # run steps
    assert int(b2[-1].replace(",", "")) == (200 + 10) * 25_000  # device steps


def test_noise_overhead_compares_runs_with_and_without_measurements():
    out = run("bench/noise_overhead.py", "--batch-sizes", "256", "--repeats", "1")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert {"sgd", "shb", "nshb", "all"} <= rows.keys()
    assert rows["all"][-1].endswith("%") and "per-example C²" in out


def test_seed_noise_z_by_hand():
    from precision_check import seed_noise_z

    # means 2 and 3, both variances 1, n = 3: z = 1 / sqrt(1/3 + 1/3)
    assert abs(seed_noise_z([1, 2, 3], [2, 3, 4]) - 1 / (2 / 3) ** 0.5) < 1e-12
    assert seed_noise_z([4, 4], [4, 4]) == 0.0
    assert seed_noise_z([4, 4], [5, 5]) == float("inf")


def test_precision_check_compares_both_precisions(tmp_path):
    results = tmp_path / "pc.jsonl"
    out = run(
        "bench/precision_check.py",
        "--optimizers",
        "nshb",
        "--batch-sizes",
        "128",
        "--seeds",
        "0",
        "1",
        "--set",
        "accuracy.epochs",
        "1",
        "--results",
        str(results),
    )
    (record,) = [json.loads(line) for line in results.read_text().splitlines()]
    (row,) = record["rows"]
    assert (row["optimizer"], row["batch_size"]) == ("nshb", 128) and record["overrides"] == {
        "accuracy.epochs": "1"
    }
    assert row["stop_fp32"] > 0 and row["stop_bf16"] > 0 and 0 < row["acc_bf16"] <= 1
    assert (
        row["stop_fp32"] != row["stop_bf16"] or row["norm_fp32"] != row["norm_bf16"]
    )  # bf16 did round differently
    assert (
        set(record["cells_beyond_2"]) == {"stop_z", "norm_z", "acc_z"}
        and "cells with |z| > 2" in out
    )


def test_gpu_check_runs_every_step_at_toy_sizes(tmp_path):
    # The device check runs rarely and on a lent machine: its flags and imports are checked here.
    env = {
        **os.environ,
        "GPU_CHECK_SMOKE": "1",
        "OUT": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["bash", "bench/gpu_check.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "every step passed" in proc.stdout
    steps = [
        "agreement",
        "throughput",
        "throughput_graph",
        "throughput_bf16",
        "pack28",
        "sharpness",
        "projection",
    ]
    assert all((tmp_path / f"{s}.txt").stat().st_size > 0 for s in steps)
    assert " passed" in (tmp_path / "agreement.txt").read_text()
    records = [
        json.loads(line) for line in (tmp_path / "train_throughput.jsonl").read_text().splitlines()
    ]
    assert [
        (r["options"]["cuda_graph"], r["options"]["precision"], r["members"]) for r in records
    ] == [(False, "fp32", 7), (True, "fp32", 7), (False, "bf16", 7), (False, "fp32", 28)]
    assert "of 3 runs on" in (tmp_path / "projection.txt").read_text()  # the three fp32 ones


def test_log_interp_by_hand():
    from projection import log_interp

    pts = {8: 100.0, 64: 400.0}
    assert log_interp(pts, 8) == pytest.approx(100) and log_interp(pts, 64) == pytest.approx(400)
    assert log_interp(pts, 16) == pytest.approx(100 * 2 ** (2 / 3))  # rate ∝ b^(2/3) between them
    assert log_interp(pts, 2) == pytest.approx(25)  # below: a step's time stays that of b = 8
    assert log_interp(pts, 4096) == pytest.approx(400)  # above: flat


TINY_GRID = {
    "experiment": "t",
    "dataset": "digits",
    "model": "small_cnn",
    "lr": 0.1,
    "optimizers": {"sgd": 0.0},
    "batch_sizes": [8, 64],
    "cbs": {"epsilon": 1, "seeds": [0, 1], "min_epochs": 1},
    "accuracy": {"epochs": 2, "seeds": [0, 1, 2]},
    "sharpness": {"lrs": [0.1, 0.2], "batch_sizes": [8]},
    "train": {"fuse_max_batch": 8, "fuse_lrs": True},
}
# Measured with 2-member packs: fused rates at 16 and 128 images per step.
ROWS = [
    {"batch_size": 8, "single": 800.0, "fused_total": 1600.0},
    {"batch_size": 64, "single": 6400.0, "fused_total": 12800.0},
]


def test_projection_counts_the_workflows_jobs_by_hand():
    from projection import projected_seconds, rate_points
    from workload import SCHEMA

    from sgdsmooth.grid import with_defaults

    cfg = with_defaults(TINY_GRID, yaml.safe_load(SCHEMA.read_text()))
    n = 1438
    single, fused = rate_points([{"members": 2, "rows": ROWS}])
    by_b = projected_seconds(cfg, single, fused[2])
    assert by_b[64] == pytest.approx(
        4
        * 1
        * (n // 64)
        * 64
        / 6400  # CBS at b = 64: η 0.1 and Fig. 8's 0.2 (its b* needs the main grid), 2 seeds
        + 3 * 2 * (n // 64) * 64 / 6400
    )  # fixed-epoch runs: 3 seeds, 2 epochs
    assert by_b[8] == pytest.approx(
        4 * 1 * (n // 8) * 8 / 3200  # CBS group at b = 8: 2 η × 2 seeds, 32 images a step
        + 6 * 2 * (n // 8) * 8 / 4800
    )  # fixed-epoch group: 2 η × 3 seeds, 48 images a step


def test_projection_pools_one_sessions_fastest_fp32_rates(tmp_path):
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(TINY_GRID))
    slow = [
        dict(r, single=r["single"] / 1e4, fused_total=r["fused_total"] / 1e4) for r in ROWS
    ]  # hours, not s
    rec = {
        "date": "2026-11-29",
        "hardware": "H200",
        "model": "small_cnn",
        "members": 2,
        "options": {"precision": "fp32"},
        "rows": slow,
    }
    faster = [dict(r, single=2 * r["single"], fused_total=2 * r["fused_total"]) for r in slow]
    records = [
        rec | {"date": "2026-11-01", "rows": faster},  # another day: left out
        rec,
        rec | {"options": {"precision": "bf16"}, "rows": faster},  # not fp32: left out
        rec | {"rows": faster[:1]},  # e.g. CUDA graphs at b = 8: used there
        # A 4-member pack at b = 8 (32 images a step): printed as a check, not used.
        rec | {"members": 4, "rows": [dict(slow[0], fused_total=0.16 * 2 ** (2 / 3))]},
    ]
    (tmp_path / "tt.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = run(
        "bench/projection.py", str(tmp_path / "tt.jsonl"), "--config", str(tmp_path / "grid.yaml")
    )
    assert "of 3 runs on H200, 2026-11-29; fused jobs read off the 2-member packs" in out
    assert "check: 4 members at 32 images a step" in out and "(ratio 0.50)" in out
    n = 1438
    hours = {
        int(line.split()[0]): float(line.split()[1])
        for line in out.splitlines()
        if line.split()[-1] == "h"
    }
    # b = 64: CBS runs of η 0.1 and 0.2 (2 seeds each) and the 6 fixed-epoch run-epochs of η 0.1.
    assert hours[64] == pytest.approx((4 + 6) * (n // 64) * 64 / 0.64 / 3600, rel=2e-3)
    # Fused points: 16 images a step at the faster 0.32 img/s, 128 at 1.28: rate ∝ n^(2/3) between.
    fused = {k: 0.32 * (k / 16) ** (2 / 3) for k in (32, 48)}
    assert hours[8] == pytest.approx(
        (4 * (n // 8) * 8 / fused[32] + 12 * (n // 8) * 8 / fused[48]) / 3600, rel=2e-3
    )


def test_fashion_study_runs_every_step_in_smoke_mode_and_its_archive_gets_a_paper_at_home(tmp_path):
    # The device command runs rarely, on a lent machine: here every step runs on the CPU on a
    # 2,048-image slice of the real set (bench/fashion_smoke.yaml), in a copy of the workflow.
    from sgdsmooth.data import fashion_mnist_folder

    try:
        fashion_mnist_folder(ROOT / "resources")
    except FileNotFoundError:
        if os.environ.get("CI"):
            raise  # CI installs dataset-fashion-mnist (bin/setup): its absence is a fault there
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    for name in ("Snakefile", "workflow", "config", "paper", "envs", "bench"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(
            src,
            tmp_path / name,
            **(
                {"ignore": shutil.ignore_patterns("*.egg-info", "__pycache__", "results")}
                if src.is_dir()
                else {}
            ),
        )
    out = tmp_path / "out"
    env = {
        **os.environ,
        "FASHION_SMOKE": "1",
        "OUT": str(out),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["bash", "bench/fashion_study.sh"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # The projection was made from this machine's measured rates, against the budget (over it
    # here: the smoke mode goes on regardless).
    assert "budget:" in (out / "projection.txt").read_text()
    archived = out / "archive" / "fashion_smoke"
    stamp = json.loads((archived / "stamp.json").read_text())
    assert stamp["config_hash"] and not (archived / "paper.pdf").exists()  # no TeX on the device
    runs = pd.read_parquet(archived / "tables" / "cbs_runs.parquet")
    # (A smoke run may end its small budget still at chance loss: the analysis calls it collapsed.)
    assert len(runs) == 3 and set(runs.status) <= {"reached", "censored", "collapsed"}
    # No run stopped before it had learned: the gate (learned_loss) held for every reached run.
    reached = runs[runs.status == "reached"]
    assert (
        reached.steps > 2048 // 256
    ).all()  # not within the first epoch, before the gate could arm
    # At home: what came back is the archive; the paper is built from it alone and added to it.
    shutil.rmtree(tmp_path / "archive")
    shutil.copytree(archived, tmp_path / "archive" / "fashion_smoke")
    shutil.rmtree(tmp_path / "results")
    home = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "archive_paper",
            "--cores",
            "2",
            "--configfile",
            "config/fashion.yaml",
            "bench/fashion_smoke.yaml",
            "--config",
            "source=archive",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert home.returncode == 0, home.stdout[-3000:] + home.stderr[-3000:]
    assert (tmp_path / "archive" / "fashion_smoke" / "paper.pdf").stat().st_size > 10_000
    assert not (tmp_path / "results" / "fashion_smoke" / "runs").exists()  # nothing was trained


def test_the_record_bench_readme_quotes_is_committed():
    # bench/README.md quotes the Fashion rates of 2026-11-30; the record they come from must be
    # in git (not only on the machine that made it) and say what the README says.
    path = ROOT / "bench" / "results" / "train_throughput.jsonl"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT)
    assert ignored.returncode == 1, "bench/results/ is git-ignored"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    (fashion,) = [r for r in records if r["model"] == "mnist_cnn" and r["date"] == "2026-11-30"]
    rows = sorted(fashion["rows"], key=lambda row: row["batch_size"])
    quoted = (
        f"one run {', '.join(str(round(row['single'])) for row in rows)} images/s at "
        f"b = {', '.join(str(row['batch_size']) for row in rows)}"
    )
    readme = " ".join((ROOT / "bench" / "README.md").read_text().split())
    assert quoted in readme
