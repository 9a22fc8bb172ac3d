import logging

import torch

from sgdsmooth.sharpness import measure_runs

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
torch.set_num_threads(snakemake.threads)
measure_runs(
    snakemake.input.tables, snakemake.input.weights, snakemake.output, **snakemake.params.settings
)
