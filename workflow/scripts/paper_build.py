from pathlib import Path

from sgdsmooth import paper

source = Path(snakemake.input.sources[0]).parent
generated = Path(snakemake.input.generated[0]).parent
paper.build_pdf(source, generated, snakemake.output[0], snakemake.log[0])
