"""GPU time of a config's whole grid, projected from measured training rates.

    python bench/projection.py bench/results/train_throughput.jsonl [--config config/paper.yaml]

Pools the records of ``train_throughput.py`` from one device and day (the newest record of
the config's model, and every record with its date and hardware) at one precision (fp32
unless ``--precision``: bf16 is not the default until compared), keeps at each point the
fastest rate measured there (e.g. a CUDA-graph pass at small b), and adds up the config's
training jobs as the workflow runs them (sgdsmooth.grid):

* a job that trains its runs one after another takes its images at the single run's rate
  at its batch size;
* a fused job of k runs at batch size b steps k·b images at once, and its rate is read off
  the packs measured at the most batch sizes (7 members) at the same number of images per
  step: a 28-member Figure 8 group at b = 2 counts as 7 members at b = 8. Other pack sizes
  measured are printed as checks of that reading (``gpu_check.sh`` measures 28 at b = 2):
  a bigger pack moves k times the weights, gradients and directions per step, which tiny
  batches do not hide, so a ratio well below 1 means the Figure 8 groups take longer;
* rates are interpolated linearly in log size–log rate between measured points, flat above
  them, and proportional to the size below them (a step's time no longer shrinks there);
* CBS runs count at their whole budget (``cbs.max_sfo``/``max_steps``) when the config
  sets ``cbs.max_sfo``, an upper bound; otherwise at ``cbs.min_epochs``, a lower one
  (``workload.run_steps``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

from workload import cbs_note, read_config, run_steps  # bench/

from sgdsmooth.config import train_size
from sgdsmooth.grid import sharpness_cells, training_jobs
from sgdsmooth.names import TEST_SIZES, TRAIN_SIZES

# cbs_runs → critical_batch_size → variance → delta → claims → paper_generated → paper → archive
TAIL_DEPTH = 8
Points = dict[float, float]  # size (batch size, or images per fused step) → images/s


def log_interp(points: Points, x: float) -> float:
    """The rate at ``x`` from measured points (see the module docstring)."""
    pts = sorted((math.log(a), math.log(r)) for a, r in points.items())
    lx = math.log(x)
    if lx <= pts[0][0]:
        return math.exp(pts[0][1] + lx - pts[0][0])
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if lx <= x1:
            return math.exp(y0 + (y1 - y0) * (lx - x0) / (x1 - x0))
    return math.exp(pts[-1][1])


def rate_points(records: list[dict]) -> tuple[Points, dict[int, Points]]:
    """Single-run rates by batch size, and fused rates by images per step for each pack
    size measured; the fastest measured at each point."""
    single: Points = {}
    fused: dict[int, Points] = defaultdict(dict)
    for rec in records:
        k = rec["members"]
        for row in rec["rows"]:
            b = row["batch_size"]
            single[b] = max(single.get(b, 0.0), row["single"])
            fused[k][k * b] = max(fused[k].get(k * b, 0.0), row["fused_total"])
    return single, dict(fused)


def base_pack(fused: dict[int, Points]) -> int:
    """The pack size measured at the most points: the one the projection reads."""
    return max(fused, key=lambda k: (len(fused[k]), -k))


def pack_checks(fused: dict[int, Points]) -> list[tuple[int, float, float, float]]:
    """(k, images per step, measured rate, the base packs' rate there) for every other pack
    size: how far the reading by images per step is from packs of that size."""
    base = base_pack(fused)
    return [
        (k, n, rate, log_interp(fused[base], n))
        for k in sorted(fused)
        if k != base
        for n, rate in sorted(fused[k].items())
    ]


def projected_seconds(cfg: dict, single: Points, fused: Points) -> dict[int, float]:
    """Device seconds of ``cfg``'s training jobs, by batch size, from single-run rates by
    batch size and fused rates by images per step."""
    out: dict[int, float] = defaultdict(float)
    for job in training_jobs(cfg):
        images = job.runs * run_steps(cfg, job) * job.batch_size
        rate = (
            log_interp(fused, job.runs * job.batch_size)
            if job.fused
            else log_interp(single, job.batch_size)
        )
        out[job.batch_size] += images / rate
    return dict(sorted(out.items()))


def record_dataset(record: dict) -> str:
    """The data set whose image shape a record was measured on (older records: by model)."""
    return record.get("dataset") or ("cifar100" if record["model"] == "resnet18" else "digits")


def side_seconds(cfg: dict, single: Points) -> float:
    """Device seconds of what the fixed-epoch runs do besides their steps, one run at a time:
    evaluation on the test set after every epoch (a forward pass: a third of a training
    image) and the full-gradient passes of K² and the noise measurements (forward and
    backward over the training set, in large chunks), all at the single-run rate of the
    largest batch measured."""
    rate = log_interp(single, max(single))
    n_test = (
        TEST_SIZES[cfg["dataset"]] * train_size(cfg) / TRAIN_SIZES[cfg["dataset"]]
    )  # a subset cuts both
    passes = len(set(cfg["accuracy"]["full_grad_epochs"]) | set(cfg["noise"]["epochs"]))
    per_run = cfg["accuracy"]["epochs"] * n_test / 3 + passes * train_size(cfg)
    runs = sum(job.runs for job in training_jobs(cfg) if job.protocol == "epochs")
    return runs * per_run / rate


def same_session(
    records: list[dict],
    model: str,
    precision: str,
    dataset: str | None = None,
    hardware: str | None = None,
) -> list[dict]:
    """The records of the newest run of ``model`` (on ``dataset``'s images, when given; on
    hardware whose name contains ``hardware``, when given) on its device and day, at
    ``precision``."""
    ours = [
        r
        for r in records
        if r["model"] == model
        and r["options"]["precision"] == precision
        and (dataset is None or record_dataset(r) == dataset)
        and (hardware is None or hardware.lower() in r["hardware"].lower())
    ]
    if not ours:
        raise SystemExit(
            f"no {precision} record of {model}"
            + (f" on {dataset}" if dataset else "")
            + (f" on {hardware}" if hardware else "")
        )
    last = ours[-1]
    return [r for r in ours if (r["date"], r["hardware"]) == (last["date"], last["hardware"])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="train_throughput.py's JSON-lines file")
    ap.add_argument(
        "--config", nargs="+", default=["config/paper.yaml"], help="config files, merged in order"
    )
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument(
        "--hardware", help="only records whose hardware line contains this (e.g. H200, CPU)"
    )
    ap.add_argument(
        "--job-seconds",
        type=float,
        default=0.0,
        help=(
            "a job's fixed cost on this device (start, imports, CUDA context, data): "
            "measured by the caller"
        ),
    )
    ap.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="jobs the workflow runs at once (their fixed costs overlap)",
    )
    ap.add_argument(
        "--budget-seconds",
        type=float,
        help="exit with status 3 when the projection exceeds this (a device script's check)",
    )
    args = ap.parse_args()
    cfg = read_config(*args.config)
    records = [
        json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()
    ]
    pooled = same_session(records, cfg["model"], args.precision, cfg["dataset"], args.hardware)
    single, fused = rate_points(pooled)
    k = base_pack(fused)
    per_b = projected_seconds(cfg, single, fused[k])
    print(
        f"{' + '.join(args.config)} ({cfg['model']}) at the {args.precision} rates "
        f"of {len(pooled)} runs on "
        f"{pooled[-1]['hardware']}, {pooled[-1]['date']}; fused jobs read off the {k}-member packs:"
    )
    for b, s in per_b.items():
        print(f"{b:>6} {s / 3600:>9.2f} h")
    total = sum(per_b.values())
    print(f"{'all':>6} {total / 3600:>9.2f} h ({total:,.0f} s; {cbs_note(cfg)})")
    side = side_seconds(cfg, single)
    total += side
    print(
        f"evaluation and full-gradient passes of the fixed-epoch runs: {side:,.0f} s; "
        f"with the steps: {total:,.0f} s"
    )
    if args.job_seconds:
        jobs = len(training_jobs(cfg)) + len({(c[1], c[3]) for c in sharpness_cells(cfg)})
        fixed = jobs * args.job_seconds / args.parallel
        # After training, the tables, figures and archive are a chain of about 8 jobs deep.
        tail = TAIL_DEPTH * args.job_seconds
        total += fixed + tail
        print(
            f"jobs' fixed costs: {jobs} training and sharpness jobs × {args.job_seconds:.1f} s "
            f"/ {args.parallel} at once = {fixed:,.0f} s, "
            f"and the analysis after them, {TAIL_DEPTH} jobs deep: {tail:,.0f} s; "
            f"in all (nothing overlapped on the device): {total:,.0f} s"
        )
    for other, n, measured, read in pack_checks(fused):
        print(
            f"check: {other} members at {n:g} images a step: {measured:,.0f} img/s measured, "
            f"{read:,.0f} as read off the {k}-member packs (ratio {measured / read:.2f})"
        )
    if args.budget_seconds is not None:
        verdict = "within" if total <= args.budget_seconds else "OVER"
        print(
            f"budget: {total:,.0f} s projected, {verdict} the {args.budget_seconds:,.0f} s allowed"
        )
        if total > args.budget_seconds:
            raise SystemExit(3)


if __name__ == "__main__":
    main()
