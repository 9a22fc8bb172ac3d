"""Issue 23's target table, read off one session's ``train_throughput.py`` records.

    python bench/targets.py RECORDS [--projection projection.json] [--out targets.jsonl]

One row per target (the b = 8 population row once per deterministic setting measured): the
best rate measured for it in RECORDS, the target, the rate before the population engine
(``results/h200-2026-12-04/``), and whether it is met; a row with nothing measured says so.
One more row, without a target: what a CBS population's step costs against a fixed-epoch one
(the stopping rule on the device, ``train_throughput.py --protocol cbs``), as a rate ratio.
Writes one JSON record per row to ``--out``. Prints, asserts nothing: the measurements are
the benchmark's, the verdicts are for the reader.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# (what, model, b: smallest, K: smallest, mode, precision, target img/s, before)
TARGETS = [
    ("mnist_cnn, b = 8, population of ≥ 32, total", "mnist_cnn", 8, 32, "population", "fp32",
     200_000, 23_382),
    ("mnist_cnn, b = 64, population of ≥ 32, total", "mnist_cnn", 64, 32, "population", "fp32",
     400_000, 184_105),
    ("resnet18, b = 8, population of 7, total", "resnet18", 8, 7, "population", "fp32",
     15_000, 7_768),
    ("resnet18, b ≥ 512, one run, bf16", "resnet18", 512, 1, "graph", "bf16", 85_000, 49_588),
]  # fmt: skip
FASHION_BUDGET_S = 480.0
FASHION_BEFORE_S = 4_276.0


def matches(record: dict, model: str, b: int, k: int, mode: str, precision: str) -> bool:
    if "error" in record or record.get("mode") != mode or record["model"] != model:
        return False
    if record["options"].get("protocol", "epochs") != "epochs":
        return False
    if record["options"]["precision"] != precision:
        return False
    if mode == "population":  # "population of 7": exactly; "of ≥ 32": at least
        return record["b"] == b and (record["K"] >= k if k >= 32 else record["K"] == k)
    return record["b"] >= b and record["K"] == k


def rows(records: list[dict], projection: dict | None) -> list[dict]:
    out = []
    for what, model, b, k, mode, precision, target, before in TARGETS:
        found = [r for r in records if matches(r, model, b, k, mode, precision)]
        settings = sorted({r["options"].get("deterministic") for r in found}, key=str) or [None]
        if model == "mnist_cnn" and b == 8:  # measured under both settings: one row each
            groups = [
                [r for r in found if r["options"].get("deterministic") == d] for d in settings
            ]
        else:
            groups = [found]
        for group in groups:
            best = max(group, key=lambda r: r["images_per_s"], default=None)
            row = {"measure": what, "unit": "img/s", "target": target, "before": before}
            if best is None:
                row |= {"measured": None, "met": None}
            else:
                row |= {
                    "measured": best["images_per_s"],
                    "met": best["images_per_s"] >= target,
                    "record": {
                        key: best[key]
                        for key in ("model", "dataset", "b", "K", "mode", "options", "date")
                    },
                }
            out.append(row)
    out.append(cbs_cost(records))
    row = {
        "measure": "config/fashion.yaml, projected from measured rates",
        "unit": "s",
        "target": FASHION_BUDGET_S,
        "before": FASHION_BEFORE_S,
        "measured": None,
        "met": None,
    }
    if projection:
        total = projection["total_seconds"]
        row |= {"measured": total, "met": total <= FASHION_BUDGET_S}
    out.append(row)
    return out


CBS_POINT = ("mnist_cnn", 8, 32)  # (model, b, K) where the CBS step is measured


def cbs_cost(records: list[dict]) -> dict:
    """The CBS step's rate over the fixed-epoch step's, both at ``CBS_POINT`` with the same
    options (graphed, deterministic, fp32): 1 would be free."""
    model, b, k = CBS_POINT
    row = {
        "measure": f"{model}, b = {b}, K = {k}: CBS step / fixed-epoch step",
        "unit": "ratio",
        "target": None,
        "before": None,
        "measured": None,
        "met": None,
    }
    at = [
        r
        for r in records
        if "error" not in r
        and r.get("mode") == "population"
        and r["model"] == model
        and (r["b"], r["K"]) == (b, k)
    ]
    cbs = [r for r in at if r["options"].get("protocol") == "cbs"]
    for c in cbs[-1:]:
        same = {key: v for key, v in c["options"].items() if key != "protocol"}
        epochs = [
            r
            for r in at
            if r["options"].get("protocol", "epochs") == "epochs"
            and {key: v for key, v in r["options"].items() if key != "protocol"} == same
        ]
        if epochs:
            row["measured"] = c["images_per_s"] / epochs[-1]["images_per_s"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", help="train_throughput.py's JSON-lines file")
    ap.add_argument("--projection", help="projection.py --json's file (Fashion-MNIST)")
    ap.add_argument("--out", help="write one JSON record per row here")
    args = ap.parse_args()
    records = [json.loads(x) for x in Path(args.records).read_text().splitlines() if x.strip()]
    projection = None
    if args.projection and Path(args.projection).exists():
        projection = json.loads(Path(args.projection).read_text())
    table = rows(records, projection)
    print(f"{'measure':<52} {'before':>9} {'target':>9} {'measured':>10}  met")
    for r in table:
        det = r.get("record", {}).get("options", {}).get("deterministic")
        name = r["measure"] + ("" if det is None else f" (det. {'on' if det else 'off'})")
        digits = ".2f" if r["unit"] == "ratio" else ",.0f"
        measured, before, target = (
            "—" if r[key] is None else format(r[key], digits)
            for key in ("measured", "before", "target")
        )
        met = {True: "yes", False: "NO", None: "—" if r["target"] is None else "not measured"}
        print(f"{name:<52} {before:>9} {target:>9} {measured:>10}  {met[r['met']]}")
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in table))


if __name__ == "__main__":
    main()
