from pathlib import Path

from sgdsmooth import paper

paper.build_pdf(Path(snakemake.input.sources[0]).parent, snakemake.params.generated, snakemake.output[0], snakemake.log[0])
