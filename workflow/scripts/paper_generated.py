import json
from pathlib import Path

from sgdsmooth import archive, paper, tables

frames = {Path(p).stem: tables.read_table(p, Path(p).stem) for p in snakemake.input.tables}
figures = [
    {"pdf": pdf, "caption": cap}
    for pdf, cap in zip(snakemake.input.figures, snakemake.input.captions)
]
device = tables.read_metadata(snakemake.input.example_run)["device"]
cfg = snakemake.params.config
# The checkout building this report (the commit of this run, as the figures' captions carry
# theirs) and, from an archive, the one that measured it.
measured = json.loads(Path(snakemake.input.stamp).read_text()) if snakemake.input.stamp else None
prov = paper.provenance(archive.build_state(Path(snakemake.scriptdir).parents[1]), cfg, measured)
out_dir = Path(snakemake.output[0]).parent
paper.write_generated(out_dir, cfg, frames, figures, snakemake.input.benchmarks, device, prov)
Path(snakemake.output.front).write_text(
    paper.report_front(prov, cfg["experiment"], device), encoding="utf-8"
)
