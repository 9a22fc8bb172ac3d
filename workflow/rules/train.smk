# Training: one job per cell (optimizer × lr × beta × batch size) trains every seed of the
# cell in one process, so a small model pays Python and torch start-up once per cell, and
# the scheduler sees one job per cell, not per run. At b ≤ train.fuse_max_batch the seeds
# train together as one fused network (sgdsmooth.ensemble).


rule train_cbs:
    """CBS runs: train until the running mean of gradient norms reaches ε, per seed."""
    input:
        data_files(),
        lib("train", "ensemble", "graphs", "optim", "models", "data", "config", "noise"),
    output:
        expand(CBS_RUN, seed=CBS_SEEDS, allow_missing=True),
    log:
        f"{R}/logs/train_cbs/eps{{eps}}/{CELL}.log",
    benchmark:
        f"{R}/benchmarks/train_cbs/eps{{eps}}/{CELL}.tsv"
    retries: 2
    conda:
        ENV
    threads: TRAIN["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt if GPU else 2000,
        runtime=lambda wildcards, attempt: train_runtime(wildcards, attempt, "cbs"),
        gpu=GPU,
        slurm_account=SLURM_ACCOUNT,
    params:
        run=lambda wildcards: run_config(wildcards, "cbs"),
        seeds=CBS_SEEDS,
        fuse=fuse_seeds,
    script:
        "../scripts/train_runs.py"


rule train_epochs:
    """Fixed-epoch runs: train E epochs, evaluate after each, save the final weights."""
    input:
        data_files(),
        lib("train", "ensemble", "graphs", "optim", "models", "data", "config", "noise"),
    output:
        tables=expand(EPOCH_RUN, seed=ACC_SEEDS, allow_missing=True),
        weights=expand(EPOCH_WEIGHTS, seed=ACC_SEEDS, allow_missing=True),
        noise=(
            expand(EPOCH_NOISE, seed=ACC_SEEDS, allow_missing=True)
            if NOISE["epochs"]
            else []
        ),
    log:
        f"{R}/logs/train_epochs/{CELL}.log",
    benchmark:
        f"{R}/benchmarks/train_epochs/{CELL}.tsv"
    retries: 2
    conda:
        ENV
    threads: TRAIN["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt if GPU else 2000,
        runtime=lambda wildcards, attempt: train_runtime(wildcards, attempt, "epochs"),
        gpu=GPU,
        slurm_account=SLURM_ACCOUNT,
    params:
        run=lambda wildcards: run_config(wildcards, "epochs"),
        seeds=ACC_SEEDS,
        fuse=fuse_seeds,
    script:
        "../scripts/train_runs.py"
