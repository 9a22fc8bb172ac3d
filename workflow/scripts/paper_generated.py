from pathlib import Path

from sgdsmooth import paper, tables

frames = {Path(p).stem: tables.read_table(p, Path(p).stem) for p in snakemake.input.tables}
figures = [
    {"pdf": pdf, "caption": cap}
    for pdf, cap in zip(snakemake.input.figures, snakemake.input.captions)
]
device = tables.read_metadata(snakemake.input.example_run)["device"]
out_dir = Path(snakemake.output[0]).parent
paper.write_generated(
    out_dir, snakemake.params.config, frames, figures, snakemake.input.benchmarks, device
)
