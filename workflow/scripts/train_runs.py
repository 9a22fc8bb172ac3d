import logging

from sgdsmooth.devices import claim_gpu, count_gpus

if snakemake.resources.get("gpu", 0):  # before torch starts CUDA
    claim_gpu(count_gpus(), ".snakemake/gpu-locks")

from sgdsmooth.train import slurm_deadline, train_seeds  # noqa: E402

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
outputs = snakemake.output[: len(snakemake.params.seeds)]  # the metrics tables come first
deadline = slurm_deadline(snakemake.resources.get("runtime"))
train_seeds(snakemake.params.run, snakemake.params.seeds, outputs, snakemake.threads, deadline, snakemake.params.fuse)
