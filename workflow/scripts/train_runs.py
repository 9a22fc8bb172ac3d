from sgdsmooth.devices import claim_gpu, count_gpus
from sgdsmooth.jobs import job_log, stop_with_parent

stop_with_parent()  # a killed snakemake stops this job too (SIGTERM: checkpoint, then leave)
with job_log(snakemake.log[0]):  # every attempt, under its own header
    if snakemake.resources.get("gpu", 0):  # before torch starts CUDA
        claim_gpu(count_gpus(), ".snakemake/gpu-locks")

    from sgdsmooth.training import slurm_deadline, train_cells

    runs, seeds = snakemake.params.runs, snakemake.params.seeds
    tables = snakemake.output[: len(runs) * len(seeds)]  # the metrics tables first, cell-major
    deadline = slurm_deadline(snakemake.resources.get("runtime"))
    train_cells(runs, seeds, tables, snakemake.threads, deadline, snakemake.params.together)
