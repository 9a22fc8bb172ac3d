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
        runs = Counter(
            (c, s) for j in jobs if j.protocol == protocol for c in j.cells for s in j.seeds
        )
        assert runs == Counter((c, s) for c in grid.cells(cfg, protocol) for s in seeds)
        groups = [j for j in jobs if j.protocol == protocol and len(j.cells) > 1]
        # Every cell at each b ≤ population_max_batch (64): one population job per batch size.
        assert [j.batch_size for j in groups] == [2, 4, 8, 16, 32, 64]
        for j in groups:
            assert j.together and set(j.cells) == {
                c for c in grid.cells(cfg, protocol) if c[3] == j.batch_size
            }
        assert {o for j in groups for o, *_ in j.cells} == {"sgd", "shb", "nshb"}
        assert all(j.together == (j.batch_size <= 64) for j in jobs)


def test_with_population_jobs_per_cell_every_cell_is_its_own_job():
    cfg = grid.with_defaults(raw("paper.yaml"), SCHEMA)
    cfg["train"]["population_jobs"] = "cell"
    jobs = grid.training_jobs(cfg)
    assert len(jobs) == len(grid.cells(cfg, "cbs")) + len(grid.cells(cfg, "epochs"))
    assert all(len(j.cells) == 1 for j in jobs)
    assert grid.population_batch_sizes(cfg) == []
    assert not grid.in_population_job(cfg, ("sgd", 0.1, 0.0, 2))
    assert all(j.together == (j.batch_size <= 64) for j in jobs)


def test_figure8_cbs_runs_cover_the_main_grid_its_networks_only_their_own():
    cfg = grid.with_defaults(raw("config.yaml"), SCHEMA)
    cfg["sharpness"]["batch_sizes"] = [16, 256]
    cbs, epochs = (set(grid.cells(cfg, p)) for p in ("cbs", "epochs"))
    eta = cfg["sharpness"]["lrs"][-1]
    assert {b for o, lr, _, b in cbs if lr == eta} == set(cfg["batch_sizes"])  # b* can be located
    assert {b for o, lr, _, b in epochs if lr == eta} == {16, 256}
    assert epochs < cbs and {c[3] for c in grid.sharpness_cells(cfg)} == {16, 256}
    with pytest.raises(ValueError, match="protocol"):
        grid.cells(cfg, "both")
