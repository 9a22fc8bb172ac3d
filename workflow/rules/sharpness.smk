# Figure 8: sharpness (adaptive and plain) of the SGD networks trained at several learning rates.

SHARP = config["sharpness"]


rule sharpness:
    """Worst-case adaptive and plain sharpness of every seed's final weights in one cell
    (``sharpness.adaptive`` is not a setting here: both are always measured)."""
    input:
        tables=expand(EPOCH_RUN, seed=ACC_SEEDS, allow_missing=True),
        weights=expand(EPOCH_WEIGHTS, seed=ACC_SEEDS, allow_missing=True),
        code=lib("sharpness", "models", "data", "collect", "tables"),
    output:
        expand(SHARPNESS_RUN, seed=ACC_SEEDS, allow_missing=True),
    log:
        f"{R}/logs/sharpness/{CELL}.log",
    benchmark:
        f"{R}/benchmarks/sharpness/{CELL}.tsv"
    conda:
        ENV
    threads: TRAIN["threads"]
    resources:
        mem_mb=4000 if GPU else 2000,
        runtime=30,
        gpu=GPU,
        slurm_account=SLURM_ACCOUNT,
    params:
        settings={
            k: SHARP[k]
            for k in (
                "rho",
                "p",
                "iterations",
                "n_examples",
                "batch_size",
                "random_start",
            )
        },
    script:
        "../scripts/sharpness.py"


localrules:
    sharpness_table,
    correlations,
    fig8,


rule sharpness_table:
    input:
        runs=ALL_SHARPNESS,
        accuracy=table("accuracy"),
        delta=table("delta"),
        code=lib("collect", "tables"),
    output:
        table("sharpness"),
    log:
        f"{R}/logs/tables/sharpness.log",
    conda:
        ENV
    script:
        "../scripts/sharpness_table.py"


rule correlations:
    input:
        sharpness=table("sharpness"),
        code=lib("correlate", "tables"),
    output:
        table("correlations"),
    log:
        f"{R}/logs/tables/correlations.log",
    conda:
        ENV
    script:
        "../scripts/correlations.py"


rule fig8:
    input:
        **figure_code("fig8_sharpness"),
        sharpness=table_in("sharpness"),
    output:
        **figure_outputs("fig8_sharpness"),
    log:
        f"{R}/logs/figures/fig8_sharpness.log",
    conda:
        ENV
    params:
        module="fig8_sharpness",
        args={"adaptive": SHARP["adaptive"]},
    script:
        "../scripts/figure.py"
