"""GPU time of a config's whole grid, projected from measured training rates.

    python bench/projection.py bench/results/throughput.jsonl [--config config/fashion.yaml]
    python bench/projection.py --measure --config config/fashion.yaml   # what to measure

Pools ``train_throughput.py``'s records of one device and day (the newest record of the
config's model on its data set's images, and every record with its date and hardware) at
the config's ``train.precision`` (or ``--precision``) and ``train.deterministic``, keeps
at each point the fastest rate measured there, and adds up the config's training jobs as the
workflow runs them (``sgdsmooth.grid``):

* a job whose runs train together (``train.population_max_batch``) is one population of
  K = its runs at batch size b: it takes its images at the population's total rate at
  (b, K), replayed as CUDA graphs where b ≤ ``train.cuda_graph_max_batch``;
* a job that trains its runs one after another takes them at one run's rate at b;
* a rate at a point not measured is read off the measured ones, linearly in log–log: over K
  at the same b (proportional to K below the smallest K measured: a step's time stays that
  of the smallest population; flat above the largest); at a b not measured, over the images
  a step takes (K·b) among the populations (K > 1) or over b among single runs (K = 1), in
  the same way; where no population was measured at all, K runs count as K single runs;
* CBS runs count at their whole budget (``cbs.max_sfo``/``max_steps``) when the config sets
  ``cbs.max_sfo``, an upper bound; otherwise at ``cbs.min_epochs``, a lower one
  (``workload.run_steps``); at the fixed-epoch step's rate (the CBS step's, which also applies
  the stopping rule on the device, is measured beside it: ``targets.py``).

With ``--concurrency`` (``concurrency.py``'s records) the device time is divided by the
measured gain of ``--parallel`` processes at once over one; without it nothing overlaps.

``--measure`` prints instead the ``train_throughput.py`` arguments that measure exactly the
points the config's jobs need, one line per kind of step (``engine_check.sh`` runs them).
Records of the format before the population engine (one record of ``rows`` per call, as in
``results/h200-2026-12-04/``) count with their single runs; their fused packs (grouped
convolutions, since removed) are left out.
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
Points = dict[float, float]  # size (K, b or images per step) → images/s


def log_interp(points: Points, x: float) -> float:
    """The rate at ``x`` from measured points: linear in log size–log rate between them,
    proportional to the size below them (a step's time stays that of the smallest), flat
    above them."""
    pts = sorted((math.log(a), math.log(r)) for a, r in points.items())
    lx = math.log(x)
    if lx <= pts[0][0]:
        return math.exp(pts[0][1] + lx - pts[0][0])
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if lx <= x1:
            return math.exp(y0 + (y1 - y0) * (lx - x0) / (x1 - x0))
    return math.exp(pts[-1][1])


def record_dataset(record: dict) -> str:
    """The data set whose image shape a record was measured on (older records: by model)."""
    return record.get("dataset") or ("cifar100" if record["model"] == "resnet18" else "digits")


def cbs_step(record: dict) -> bool:
    """Whether a record measured the CBS step (``--protocol cbs``): a side measurement of what
    the stopping rule on the device costs; projections use fixed-epoch steps."""
    return record.get("options", {}).get("protocol") == "cbs"


def rate_rows(record: dict) -> list[dict]:
    """A record's measured training rates as rows {b, K, graph, rate}: a population of K
    (K = 1: one run), graphed or not. Baselines, failed measurements, CBS steps and the old
    format's fused packs are left out."""
    graph = bool(record["options"].get("cuda_graph"))
    if "mode" in record:  # train_throughput.py: one record a measurement
        if record["mode"] == "baseline" or "error" in record or cbs_step(record):
            return []
        return [
            {"b": record["b"], "K": record["K"], "graph": graph, "rate": record["images_per_s"]}
        ]
    return [  # the format before the population engine: one record of rows a call
        {"b": row["batch_size"], "K": 1, "graph": graph, "rate": row["single"]}
        for row in record["rows"]
        if row.get("single") and not math.isnan(row["single"])
    ]


class Rates:
    """The fastest rate measured at each (b, K), graphed and not; rates in between read off
    them (module docstring)."""

    def __init__(self, rows: list[dict]):
        self.points: dict[bool, dict[tuple[int, int], float]] = {False: {}, True: {}}
        for r in rows:
            key = (r["b"], r["K"])
            pts = self.points[r["graph"]]
            pts[key] = max(pts.get(key, 0.0), r["rate"])
        self.notes: set[str] = set()

    def rate(self, b: int, k: int, graph: bool) -> float:
        """Images/s of a population of ``k`` runs at batch size ``b`` (all members)."""
        pts = self.points[graph]
        if not pts:
            self.notes.add(f"no {'graphed' if graph else 'eager'} rates: the others used")
            pts = self.points[not graph]
        if (b, k) in pts:
            return pts[(b, k)]
        if k > 1 and any(kk > 1 for _, kk in pts):
            at_b = {kk: r for (bb, kk), r in pts.items() if bb == b}
            if any(kk > 1 for kk in at_b):
                return log_interp(at_b, k)
            by_images: Points = {}
            for (bb, kk), r in pts.items():
                if kk > 1:
                    by_images[bb * kk] = max(by_images.get(bb * kk, 0.0), r)
            return log_interp(by_images, b * k)
        singles = {bb: r for (bb, kk), r in pts.items() if kk == 1}
        if not singles:
            raise SystemExit(f"no single-run rates to read b = {b} off")
        if k > 1:
            self.notes.add("no population measured: a population counts as its runs one by one")
        return log_interp(singles, b)

    def largest_single(self) -> float:
        """One run's rate at the largest b measured (evaluation, full gradients): a single
        run's, else a population member's share."""
        pts = self.points[False] or self.points[True]
        b = max(bb for bb, _ in pts)
        return max(r / kk for (bb, kk), r in pts.items() if bb == b)


def graphed(cfg: dict, batch_size: int) -> bool:
    """Whether the config replays this batch size's steps as CUDA graphs (config.cell_settings)."""
    return int(batch_size) <= cfg["train"]["cuda_graph_max_batch"]


def job_shape(cfg: dict, job) -> tuple[int, int, bool]:
    """(b, K, graph) of the steps a job takes: K = its runs when they train together."""
    return job.batch_size, job.runs if job.together else 1, graphed(cfg, job.batch_size)


def projected_seconds(cfg: dict, rates: Rates) -> dict[int, float]:
    """Device seconds of ``cfg``'s training jobs' steps, by batch size."""
    out: dict[int, float] = defaultdict(float)
    for job in training_jobs(cfg):
        b, k, graph = job_shape(cfg, job)
        images = job.runs * run_steps(cfg, job) * b
        out[b] += images / rates.rate(b, k, graph)
    return dict(sorted(out.items()))


def side_seconds(cfg: dict, rates: Rates) -> float:
    """Device seconds of what the fixed-epoch runs do besides their steps: evaluation on the
    test set after every epoch (a forward pass: a third of a training image) and the
    full-gradient passes of K² and the noise measurements (forward and backward over the
    training set, in large chunks), at one run's rate at the largest batch measured."""
    n_test = (
        TEST_SIZES[cfg["dataset"]] * train_size(cfg) / TRAIN_SIZES[cfg["dataset"]]
    )  # a subset cuts both
    passes = len(set(cfg["accuracy"]["full_grad_epochs"]) | set(cfg["noise"]["epochs"]))
    per_run = cfg["accuracy"]["epochs"] * n_test / 3 + passes * train_size(cfg)
    runs = sum(job.runs for job in training_jobs(cfg) if job.protocol == "epochs")
    return runs * per_run / rates.largest_single()


def concurrency_ratio(path: str | Path, processes: int) -> tuple[float, str]:
    """How much more work ``processes`` jobs at once do on the device than one: the newest
    of ``concurrency.py``'s records with that many processes (its total rate over one
    process's, measured in the same run), and where it was measured; 1 when none has it."""
    records = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    found = [r for r in records if r["processes"] == processes and r.get("ratio_to_one")]
    if not found:
        return 1.0, f"no concurrency.py record of {processes} processes: taken as 1"
    r, point = found[-1], found[-1]["point"]
    where = f"measured at b = {point['b']}, K = {point['K']}, {r['date']}; taken for every job"
    return float(r["ratio_to_one"]), where


def measurements(cfg: dict) -> list[list[str]]:
    """``train_throughput.py`` arguments that measure every (b, K, graph) the config's jobs
    take: one list per kind of step, batch sizes together."""
    groups: dict[tuple[int, bool], set[int]] = defaultdict(set)
    for job in training_jobs(cfg):
        b, k, graph = job_shape(cfg, job)
        groups[(k, graph)].add(b)
    train = cfg["train"]
    options = ["--model", cfg["model"], "--dataset", cfg["dataset"]]
    options += ["--deterministic" if train["deterministic"] else "--no-deterministic"]
    options += ["--bf16"] * (train["precision"] == "bf16")
    options += ["--channels-last"] * bool(train["channels_last"])
    lines = []
    for (k, graph), sizes in sorted(groups.items()):
        head = ["--batch-sizes", *map(str, sorted(sizes)), *options]
        if k == 1:
            lines.append([*head, "--modes", "graph" if graph else "eager"])
        else:
            flag = "--population-graph" if graph else "--no-population-graph"
            lines.append([*head, "--modes", "population", "--populations", str(k), flag])
    return lines


def same_session(
    records: list[dict],
    model: str,
    precision: str,
    dataset: str | None = None,
    hardware: str | None = None,
    deterministic: bool | None = None,
) -> list[dict]:
    """The records of the newest run of ``model`` (on ``dataset``'s images, when given; on
    hardware whose name contains ``hardware``, when given; with deterministic kernels or
    not, when given: records that do not say were not) on its device and day, at
    ``precision``."""
    ours = [
        r
        for r in records
        if r["model"] == model
        and r["options"]["precision"] == precision
        and (dataset is None or record_dataset(r) == dataset)
        and (hardware is None or hardware.lower() in r["hardware"].lower())
        and (deterministic is None or r["options"].get("deterministic", False) == deterministic)
        and rate_rows(r)
    ]
    if not ours:
        raise SystemExit(
            f"no {precision} record of {model}"
            + (f" on {dataset}" if dataset else "")
            + (f" on {hardware}" if hardware else "")
            + ("" if deterministic is None else f" with deterministic {deterministic}")
        )
    last = ours[-1]
    return [r for r in ours if (r["date"], r["hardware"]) == (last["date"], last["hardware"])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", help="train_throughput.py's JSON-lines file")
    ap.add_argument(
        "--config", nargs="+", default=["config/paper.yaml"], help="config files, merged in order"
    )
    ap.add_argument(
        "--measure",
        action="store_true",
        help="print the train_throughput.py arguments that measure the config's points",
    )
    ap.add_argument(
        "--precision", choices=["fp32", "bf16"], help="default: the config's train.precision"
    )
    ap.add_argument(
        "--hardware", help="only records whose hardware line contains this (e.g. H200, CPU)"
    )
    ap.add_argument(
        "--job-seconds",
        type=float,
        default=0.0,
        help="a job's fixed cost on this device (start, imports, CUDA context, data): "
        "measured by the caller",
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
    ap.add_argument(
        "--concurrency",
        help="concurrency.py's records: the device time is divided by the total rate of "
        "--parallel processes at once over one's (default: nothing overlaps on the device)",
    )
    ap.add_argument("--json", help="also write the projection here as one JSON object")
    args = ap.parse_args()
    cfg = read_config(*args.config)
    if args.measure:
        for line in measurements(cfg):
            print(" ".join(line))
        return
    if not args.results:
        ap.error("the records file is needed (or --measure)")
    records = [
        json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()
    ]
    args.precision = args.precision or cfg["train"]["precision"]
    deterministic = cfg["train"]["deterministic"]
    pooled = same_session(
        records, cfg["model"], args.precision, cfg["dataset"], args.hardware, deterministic
    )
    rates = Rates([row for r in pooled for row in rate_rows(r)])
    per_b = projected_seconds(cfg, rates)
    print(
        f"{' + '.join(args.config)} ({cfg['model']}) at the {args.precision} rates "
        f"of {len(pooled)} records on {pooled[-1]['hardware']}, {pooled[-1]['date']} "
        f"(deterministic {deterministic}):"
    )
    for job_b, s in per_b.items():
        print(f"{job_b:>6} {s / 3600:>9.3f} h")
    steps = sum(per_b.values())
    print(f"{'all':>6} {steps / 3600:>9.3f} h ({steps:,.0f} s; {cbs_note(cfg)})")
    side = side_seconds(cfg, rates)
    total = steps + side
    print(
        f"evaluation and full-gradient passes of the fixed-epoch runs: {side:,.0f} s; "
        f"with the steps: {total:,.0f} s"
    )
    shared = 1.0
    if args.concurrency:
        shared, where = concurrency_ratio(args.concurrency, args.parallel)
        total /= shared
        print(
            f"{args.parallel} jobs at once do {shared:.2f}× the work of one ({where}): "
            f"{total:,.0f} s"
        )
    fixed = tail = 0.0
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
            f"in all{'' if args.concurrency else ' (nothing overlapped on the device)'}: "
            f"{total:,.0f} s"
        )
    for note in sorted(rates.notes):
        print(f"note: {note}")
    if args.json:
        summary = {
            "config": args.config,
            "model": cfg["model"],
            "hardware": pooled[-1]["hardware"],
            "date": pooled[-1]["date"],
            "precision": args.precision,
            "deterministic": deterministic,
            "steps_seconds_by_batch": per_b,
            "side_seconds": side,
            "concurrency_ratio": shared,
            "fixed_seconds": fixed + tail,
            "total_seconds": total,
            "budget_seconds": args.budget_seconds,
            "notes": sorted(rates.notes),
        }
        Path(args.json).write_text(json.dumps(summary) + "\n")
    if args.budget_seconds is not None:
        verdict = "within" if total <= args.budget_seconds else "OVER"
        print(
            f"budget: {total:,.0f} s projected, {verdict} the {args.budget_seconds:,.0f} s allowed"
        )
        if total > args.budget_seconds:
            raise SystemExit(3)


if __name__ == "__main__":
    main()
