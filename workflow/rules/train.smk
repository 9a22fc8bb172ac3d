# Training: one job per cell (optimizer × lr × beta × batch size) trains every seed of the
# cell in one process, so a small model pays Python and torch start-up once per cell, and
# the scheduler sees one job per cell, not per run. At b ≤ train.fuse_max_batch the seeds
# train together as one fused network (sgdsmooth.ensemble); with train.fuse_lrs, Figure 8's
# learning rates of such a batch size do too, in one job (the rules at the end).
# No rule sets `retries:`, which would override the command line's --retries: bin/run passes
# --retries 2 and the Slurm profile retries: 3, and a user's --retries 0 means none. A retried
# job resumes its runs from their checkpoints.


rule train_cbs:
    """CBS runs: train until the running mean of gradient norms reaches ε, per seed."""
    input:
        data_files(),
        TRAIN_CODE,
    output:
        expand(CBS_RUN, seed=CBS_SEEDS, allow_missing=True),
    log:
        f"{R}/logs/train_cbs/eps{{eps}}/{CELL}.log",
    benchmark:
        f"{R}/benchmarks/train_cbs/eps{{eps}}/{CELL}.tsv"
    conda:
        ENV
    threads: TRAIN["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt if GPU else 2000,
        runtime=lambda wildcards, attempt: train_runtime(wildcards, attempt, "cbs"),
        gpu=GPU,
        slurm_account=SLURM_ACCOUNT,
    params:
        runs=lambda wildcards: [run_config(wildcards, "cbs")],
        seeds=CBS_SEEDS,
        fuse=fuse_seeds,
    script:
        "../scripts/train_runs.py"


rule train_epochs:
    """Fixed-epoch runs: train E epochs, evaluate after each, save the final weights."""
    input:
        data_files(),
        TRAIN_CODE,
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
    conda:
        ENV
    threads: TRAIN["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt if GPU else 2000,
        runtime=lambda wildcards, attempt: train_runtime(wildcards, attempt, "epochs"),
        gpu=GPU,
        slurm_account=SLURM_ACCOUNT,
    params:
        runs=lambda wildcards: [run_config(wildcards, "epochs")],
        seeds=ACC_SEEDS,
        fuse=fuse_seeds,
    script:
        "../scripts/train_runs.py"


# Figure 8 at small batch sizes: SGD at every sharpness.lrs and every seed of one batch size
# in one fused job, the cells' own files written as the per-cell rules write them. The
# trade-off: adding a learning rate retrains its whole group (on a GPU about the price of
# one cell, since the pack is what fills the device).
if LR_GROUP_B:

    ruleorder: train_cbs_lrs > train_cbs
    ruleorder: train_epochs_lrs > train_epochs

    rule train_cbs_lrs:
        """CBS runs of Figure 8's learning rates at one small batch size, as one job."""
        input:
            data_files(),
            TRAIN_CODE,
        output:
            lr_group(CBS_RUN, CBS_SEEDS, eps="{eps}", b="{b}"),
        log:
            f"{R}/logs/train_cbs/eps{{eps}}/sgd/fig8/b{{b}}.log",
        benchmark:
            f"{R}/benchmarks/train_cbs/eps{{eps}}/sgd/fig8/b{{b}}.tsv"
        wildcard_constraints:
            b=LR_GROUP_B_REGEX,
        conda:
            ENV
        threads: TRAIN["threads"]
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt if GPU else 2000,
            runtime=lambda wildcards, attempt: train_runtime(
                wildcards, attempt, "cbs", len(config["sharpness"]["lrs"])
            ),
            gpu=GPU,
            slurm_account=SLURM_ACCOUNT,
        params:
            runs=lambda wildcards: lr_group_runs(wildcards, "cbs"),
            seeds=CBS_SEEDS,
            fuse=True,
        script:
            "../scripts/train_runs.py"

    rule train_epochs_lrs:
        """Fixed-epoch runs of Figure 8's learning rates at one small batch size, as one job."""
        input:
            data_files(),
            TRAIN_CODE,
        output:
            tables=lr_group(EPOCH_RUN, ACC_SEEDS, b="{b}"),
            weights=lr_group(EPOCH_WEIGHTS, ACC_SEEDS, b="{b}"),
            noise=lr_group(EPOCH_NOISE, ACC_SEEDS, b="{b}") if NOISE["epochs"] else [],
        log:
            f"{R}/logs/train_epochs/sgd/fig8/b{{b}}.log",
        benchmark:
            f"{R}/benchmarks/train_epochs/sgd/fig8/b{{b}}.tsv"
        wildcard_constraints:
            b=LR_GROUP_B_REGEX,
        conda:
            ENV
        threads: TRAIN["threads"]
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt if GPU else 2000,
            runtime=lambda wildcards, attempt: train_runtime(
                wildcards, attempt, "epochs", len(config["sharpness"]["lrs"])
            ),
            gpu=GPU,
            slurm_account=SLURM_ACCOUNT,
        params:
            runs=lambda wildcards: lr_group_runs(wildcards, "epochs"),
            seeds=ACC_SEEDS,
            fuse=True,
        script:
            "../scripts/train_runs.py"
