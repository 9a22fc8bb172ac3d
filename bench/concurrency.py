"""How many training processes should share one GPU? Their total rate, side by side.

    python bench/concurrency.py --processes 1 2 4 8 -- --model mnist_cnn --dataset fashion_mnist \
        --batch-sizes 8 --modes population --populations 18
    python bench/concurrency.py --smoke      # CPU, tiny sizes (tests/test_bench.py)

For each N of ``--processes`` it starts N copies of ``train_throughput.py`` with the
arguments after ``--`` (one measurement each: one mode, one b, one K), which warm up, wait
for each other (``--barrier``) and then step for the same ``--seconds`` of wall time; the
total rate is the sum of theirs. A GPU time-slices processes (no MPS here), so the total
says whether N jobs at once fill it better than one: the workflow runs ``--cores`` /
``train.threads`` training jobs at once on one GPU (``device: auto``), and the fastest N
says which ``train.threads`` to set. One record per N is appended to ``--results``:
processes, the total and each process's images/s, the ratio to N = 1 of this run, and the
point measured. Prints the fastest N; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import append_record  # bench/

HERE = Path(__file__).resolve().parent


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    point = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--seconds", type=float, default=3.0, help="the common timed window")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="for the advice line")
    ap.add_argument("--results", default="bench/results/concurrency.jsonl")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes; never a result")
    args = ap.parse_args(own)
    if args.smoke:
        args.processes = sorted({min(n, 2) for n in args.processes})
        args.seconds = 0.2
        point = point or ["--model", "mnist_cnn", "--modes", "population", "--populations", "2"]
        point += ["--smoke"]
    if not point:
        point = ["--model", "mnist_cnn", "--modes", "population", "--populations", "8"]
    return args, point


def measure(n: int, point: list[str], seconds: float, work: Path) -> list[dict]:
    """The records of ``n`` processes measuring ``point`` at once. Should one fail, the others
    (waiting at the barrier for it) are stopped, as they are when this process is."""
    barrier = work / f"barrier{n}"
    files = [work / f"n{n}_p{i}.jsonl" for i in range(n)]
    logs = [f.with_suffix(".log") for f in files]
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "train_throughput.py"), *point,
             "--seconds", str(seconds), "--barrier", str(barrier), "--barrier-count", str(n),
             "--results", str(f)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for f, log in zip(files, logs)
    ]  # fmt: skip
    try:
        while any(p.poll() is None for p in procs):
            if any(p.returncode for p in procs):
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    records = []
    for proc, f, log in zip(procs, files, logs):
        if proc.returncode != 0:
            raise SystemExit(f"{n} processes: one failed:\n{log.read_text()[-2000:]}")
        (record,) = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        if "error" in record:
            raise SystemExit(f"{n} processes: {record['error']}")
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> None:
    args, point = parse(argv)
    # A time limit's SIGTERM (engine_check's box) unwinds through measure(), which stops
    # the processes it started: none may stay on the GPU after this one.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"train_throughput.py {' '.join(point)}; {args.seconds} s a window")
    print(f"{'processes':>9} {'img/s in all':>13} {'per process':>12} {'/ one':>6}")
    totals = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.processes:
            records = measure(n, point, args.seconds, Path(tmp))
            rates = [r["images_per_s"] for r in records]
            totals[n] = sum(rates)
            ratio = totals[n] / totals[min(totals)] if min(totals) == 1 else None
            first = records[0]
            append_record(
                args.results,
                first["hardware"],
                quiet=True,
                processes=n,
                images_per_s=totals[n],
                per_process=rates,
                ratio_to_one=ratio,
                seconds=args.seconds,
                smoke=args.smoke,
                point={k: first[k] for k in ("model", "dataset", "b", "K", "mode", "options")},
            )
            shown = "" if ratio is None else f"{ratio:.2f}"
            print(f"{n:>9} {totals[n]:>13,.0f} {totals[n] / n:>12,.0f} {shown:>6}", flush=True)
    best = max(totals, key=totals.get)
    print(
        f"fastest: {best} process(es) at once; with --cores {args.cores}, set train.threads: "
        f"{max(1, args.cores // best)} (so that {best} training job(s) share the GPU at a time)"
    )
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
