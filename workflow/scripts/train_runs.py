import logging

from sgdsmooth.devices import claim_gpu, count_gpus

if snakemake.resources.get("gpu", 0):  # before torch starts CUDA
    claim_gpu(count_gpus(), ".snakemake/gpu-locks")

from sgdsmooth.train import slurm_deadline, train_cells

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
runs, seeds = snakemake.params.runs, snakemake.params.seeds
tables = snakemake.output[: len(runs) * len(seeds)]  # the metrics tables come first, cell-major
deadline = slurm_deadline(snakemake.resources.get("runtime"))
train_cells(runs, seeds, tables, snakemake.threads, deadline, snakemake.params.fuse)
