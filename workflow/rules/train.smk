# Training: one job per cell (optimizer × lr × beta × batch size) trains every seed of the
# cell in one process, so a small model pays Python and torch start-up once per cell, and
# the scheduler sees one job per cell, not per run. At b ≤ train.population_max_batch the
# seeds train together as one population (sgdsmooth.training: one step trains them all);
# with train.population_jobs: batch_size, every run of a protocol at such a batch size (all
# optimizers, Figure 8's learning rates, all seeds) is one job and one population (the
# rules at the end).
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
        expand(CBS_NOISE, seed=CBS_SEEDS, allow_missing=True) if CBS_MEASURED else [],
    log:
        f"{R}/logs/train_cbs/eps{{eps}}/{CELL}.log",
    benchmark:
        f"{R}/benchmarks/train_cbs/eps{{eps}}/{CELL}.tsv"
    wildcard_constraints:
        b=CELL_B_REGEX,
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
        together=train_together,
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
    wildcard_constraints:
        b=CELL_B_REGEX,
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
        together=train_together,
    script:
        "../scripts/train_runs.py"


# A population per batch size: every run of a protocol at one b ≤ train.population_max_batch
# in one job, the cells' own files written as the per-cell rules write them. Which cells a
# batch size has differs between batch sizes (Figure 8's may be a coarser grid), so there is
# one rule per batch size. The trade-off: changing one cell retrains its batch size's
# population (on a GPU about the price of one cell: the population is what fills the device).
for _b in POPULATION_B:

    rule:
        name:
            f"train_cbs_population_b{_b}"
        input:
            data_files(),
            TRAIN_CODE,
        output:
            population_files(CBS_RUN, "cbs", _b, CBS_SEEDS, eps="{eps}"),
            (
                population_files(CBS_NOISE, "cbs", _b, CBS_SEEDS, eps="{eps}")
                if CBS_MEASURED
                else []
            ),
        log:
            f"{R}/logs/train_cbs/eps{{eps}}/population/b{_b}.log",
        benchmark:
            f"{R}/benchmarks/train_cbs/eps{{eps}}/population/b{_b}.tsv"
        conda:
            ENV
        threads: TRAIN["threads"]
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt if GPU else 2000,
            runtime=lambda wildcards, attempt, b=_b: train_runtime(
                SimpleNamespace(b=b), attempt, "cbs", len(population_cells("cbs", b))
            ),
            gpu=GPU,
            slurm_account=SLURM_ACCOUNT,
        params:
            runs=lambda wildcards, b=_b: population_runs("cbs", b, wildcards.eps),
            seeds=CBS_SEEDS,
            together=True,
        script:
            "../scripts/train_runs.py"

    rule:
        name:
            f"train_epochs_population_b{_b}"
        input:
            data_files(),
            TRAIN_CODE,
        output:
            tables=population_files(EPOCH_RUN, "epochs", _b, ACC_SEEDS),
            weights=population_files(EPOCH_WEIGHTS, "epochs", _b, ACC_SEEDS),
            noise=(
                population_files(EPOCH_NOISE, "epochs", _b, ACC_SEEDS)
                if NOISE["epochs"]
                else []
            ),
        log:
            f"{R}/logs/train_epochs/population/b{_b}.log",
        benchmark:
            f"{R}/benchmarks/train_epochs/population/b{_b}.tsv"
        conda:
            ENV
        threads: TRAIN["threads"]
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt if GPU else 2000,
            runtime=lambda wildcards, attempt, b=_b: train_runtime(
                SimpleNamespace(b=b),
                attempt,
                "epochs",
                len(population_cells("epochs", b)),
            ),
            gpu=GPU,
            slurm_account=SLURM_ACCOUNT,
        params:
            runs=lambda wildcards, b=_b: population_runs("epochs", b),
            seeds=ACC_SEEDS,
            together=True,
        script:
            "../scripts/train_runs.py"
