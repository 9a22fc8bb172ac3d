"""The benchmark scripts run (at tiny sizes) and write what they promise; no timing asserted."""

import json
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
