"""GPU slot assignment, tested with a pretend device count on the CPU."""

import subprocess
import sys
import textwrap

from sgdsmooth.devices import claim_gpu

CHILD = textwrap.dedent("""
    import os, sys, time
    from sgdsmooth.devices import claim_gpu
    env = dict(os.environ); env.pop("CUDA_VISIBLE_DEVICES", None)
    slot = claim_gpu(int(sys.argv[1]), sys.argv[2], timeout=float(sys.argv[3]), env=env)
    print(slot, env["CUDA_VISIBLE_DEVICES"], flush=True)
    time.sleep(float(sys.argv[4]))
""")


def spawn(n, lock_dir, timeout=5, hold=3):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(n), str(lock_dir), str(timeout), str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_jobs_get_distinct_gpus(tmp_path):
    procs = [spawn(3, tmp_path) for _ in range(3)]
    slots = sorted(p.communicate(timeout=30)[0].split()[0] for p in procs)
    assert slots == ["0", "1", "2"]


def test_a_freed_slot_is_reused_and_a_full_machine_waits(tmp_path):
    holder = spawn(1, tmp_path, hold=2)
    holder.stdout.readline()  # it holds slot 0 now
    waiter = spawn(1, tmp_path, timeout=20, hold=0)
    out, err = waiter.communicate(timeout=30)
    holder.communicate(timeout=30)
    assert out.split()[:2] == ["0", "0"], err
    stuck = spawn(1, tmp_path, hold=5)
    stuck.stdout.readline()
    late = spawn(1, tmp_path, timeout=0.5, hold=0)
    _, err = late.communicate(timeout=30)
    stuck.kill()
    assert late.returncode != 0 and "no free GPU slot" in err


def test_scheduler_choice_is_respected(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "3"}
    assert claim_gpu(4, tmp_path, env=env) is None and env["CUDA_VISIBLE_DEVICES"] == "3"
    assert claim_gpu(0, tmp_path, env={}) is None


def test_device_cuda_without_cuda_is_refused_in_one_line():
    import re

    import pytest

    from sgdsmooth.config import ConfigError, check_device

    for device, count, message in [
        ("cuda", 0, "device: cuda, but this machine has no CUDA device"),
        ("cuda:1", 1, "device: cuda:1, but this machine has only 1 CUDA device(s)"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)) as err:
            check_device(device, count)
        assert "\n" not in str(err.value)
    for device, count in [("cuda", 1), ("cuda:1", 2), ("cpu", 0), ("auto", 0)]:
        check_device(device, count)
