"""The benchmark scripts run (at tiny sizes) and write what they promise; no timing asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_train_throughput_appends_a_record(tmp_path):
    results = tmp_path / "tt.jsonl"
    out = run("bench/train_throughput.py", "--model", "small_cnn", "--batch-sizes", "8", "--steps", "2",
              "--members", "2", "--images", "512", "--channels-last", "--config", "config/config.yaml",
              "--results", str(results))
    assert "fused" in out
    (record,) = [json.loads(line) for line in results.read_text().splitlines()]
    (row,) = record["rows"]
    assert row["batch_size"] == 8 and row["fused_per_model"] == row["fused_total"] / 2
    assert record["options"] == {"precision": "fp32", "channels_last": True, "compile": False, "cuda_graph": False}
    (hours,) = record["projected_hours"].values()
    assert hours > 0 and "projected time of config/config.yaml" in out
    assert all(row[k] > 0 for k in ("baseline", "single", "fused_total"))


def test_workload_of_the_article_grid():
    out = run("bench/workload.py", "config/paper.yaml")
    last = out.strip().splitlines()
    # 518 fixed-epoch and 222 CBS runs: (3 × 11 + 4 × 13 − 11) cells × 7 and × 3 seeds.
    assert any(line.split()[:3] == ["all", "518", "222"] for line in last)
    assert "GPU-hours" in last[-1]


def test_noise_overhead_compares_runs_with_and_without_measurements():
    out = run("bench/noise_overhead.py", "--batch-sizes", "256", "--repeats", "1")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert {"sgd", "shb", "nshb", "all"} <= rows.keys()
    assert rows["all"][-1].endswith("%") and "per-example C²" in out


def test_seed_noise_z_by_hand():
    sys.path.insert(0, str(ROOT / "bench"))
    from precision_check import seed_noise_z

    # means 2 and 3, both variances 1, n = 3: z = 1 / sqrt(1/3 + 1/3)
    assert abs(seed_noise_z([1, 2, 3], [2, 3, 4]) - 1 / (2 / 3) ** 0.5) < 1e-12
    assert seed_noise_z([4, 4], [4, 4]) == 0.0
    assert seed_noise_z([4, 4], [5, 5]) == float("inf")


def test_precision_check_compares_both_precisions(tmp_path):
    results = tmp_path / "pc.jsonl"
    out = run("bench/precision_check.py", "--optimizers", "nshb", "--batch-sizes", "128", "--seeds", "0", "1",
              "--set", "accuracy.epochs", "1", "--results", str(results))
    (record,) = [json.loads(line) for line in results.read_text().splitlines()]
    (row,) = record["rows"]
    assert (row["optimizer"], row["batch_size"]) == ("nshb", 128) and record["overrides"] == {"accuracy.epochs": "1"}
    assert row["stop_fp32"] > 0 and row["stop_bf16"] > 0 and 0 < row["acc_bf16"] <= 1
    assert row["stop_fp32"] != row["stop_bf16"] or row["norm_fp32"] != row["norm_bf16"]  # bf16 did round differently
    assert set(record["cells_beyond_2"]) == {"stop_z", "norm_z", "acc_z"} and "cells with |z| > 2" in out


def test_gpu_check_runs_every_step_at_toy_sizes(tmp_path):
    # The device check runs rarely and on a lent machine: its flags and imports are checked here.
    env = {**os.environ, "GPU_CHECK_SMOKE": "1", "OUT": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "every step passed" in proc.stdout
    steps = ["agreement", "throughput", "throughput_graph", "throughput_bf16", "sharpness"]
    assert all((tmp_path / f"{s}.txt").stat().st_size > 0 for s in steps)
    assert " passed" in (tmp_path / "agreement.txt").read_text()
    records = [json.loads(line) for line in (tmp_path / "train_throughput.jsonl").read_text().splitlines()]
    assert [(r["options"]["cuda_graph"], r["options"]["precision"]) for r in records] == [
        (False, "fp32"), (True, "fp32"), (False, "bf16")]
