"""The grid of training jobs: what the workflow runs and what the projections count."""

from collections import Counter
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from sgdsmooth import grid

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())


def raw(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_defaults_are_filled_as_snakemake_fills_them(name):
    cfg = raw(name)
    validated = raw(name)
    validate(validated, str(ROOT / "config" / "schema.yaml"))
    assert grid.with_defaults(cfg, SCHEMA) == validated
    assert cfg == raw(name)  # the input is left alone


def test_article_grid_jobs_cover_every_run_once():
    cfg = grid.with_defaults(raw("paper.yaml"), SCHEMA)
    cells = grid.cells(cfg)
    assert len(cells) == 3 * 11 + (4 * 13 - 11)  # main study + Fig. 8's other η and b = 2, 4
    jobs = grid.training_jobs(cfg)
    for protocol, seeds in (("cbs", cfg["cbs"]["seeds"]), ("epochs", cfg["accuracy"]["seeds"])):
        runs = Counter((c, s) for j in jobs if j.protocol == protocol for c in j.cells for s in j.seeds)
        assert runs == Counter((c, s) for c in cells for s in seeds)
        groups = [j for j in jobs if j.protocol == protocol and len(j.cells) > 1]
        # Fig. 8's four η at each b ≤ fuse_max_batch (64): one fused job per batch size.
        assert [j.batch_size for j in groups] == [2, 4, 8, 16, 32, 64]
        assert all(j.fused and {c[1] for c in j.cells} == {0.01, 0.05, 0.1, 0.5} for j in groups)
        assert all(j.fused == (j.batch_size <= 64) for j in jobs)


def test_without_fuse_lrs_every_cell_is_its_own_job():
    cfg = grid.with_defaults(raw("paper.yaml"), SCHEMA)
    cfg["train"]["fuse_lrs"] = False
    jobs = grid.training_jobs(cfg)
    assert len(jobs) == 2 * len(grid.cells(cfg)) and all(len(j.cells) == 1 for j in jobs)
    assert grid.lr_group_batch_sizes(cfg) == [] and not grid.in_lr_group(cfg, ("sgd", 0.1, 0.0, 2))
