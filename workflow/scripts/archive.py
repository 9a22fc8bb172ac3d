from pathlib import Path

from sgdsmooth import archive

inp, p = snakemake.input, snakemake.params
stamp = archive.write_archive(
    Path(snakemake.output[0]).parent,
    p.results,
    inp.tables,
    inp.figures,
    inp.paper or None,
    inp.benchmarks,
    inp.example_run,
    inp.runs,
    p.config,
    p.repo,
    inside=p.archives,
)
with open(snakemake.log[0], "w") as log:
    print(
        f"archived {p.results} to {Path(snakemake.output[0]).parent}: "
        f"commit {stamp['commit']}, dirty {stamp['dirty']}, "
        f"config hash {stamp['config_hash']}, device {stamp['device']}",
        file=log,
    )
