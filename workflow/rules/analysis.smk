# Run tables → study tables: cbs_runs → critical_batch_size → variance (C², K²) → delta,
# accuracy, and the claims ledger. cbs_runs and accuracy mark collapsed runs
# (collect.mark_collapsed); K² leaves out the runs the accuracy table marks. Cheap, so they
# run on the submitting host under SLURM too.


localrules:
    cbs_runs,
    critical_batch_size,
    k2,
    variance,
    delta,
    accuracy,
    claims,


rule cbs_runs:
    input:
        runs=ALL_CBS_RUNS,
        code=lib("collect", "tables"),
    output:
        table("cbs_runs"),
    log:
        f"{R}/logs/tables/cbs_runs.log",
    conda:
        ENV
    params:
        collapse=COLLAPSE,
    script:
        "../scripts/cbs_runs.py"


rule critical_batch_size:
    input:
        runs=table("cbs_runs"),
        code=lib("cbs", "theory", "tables"),
    output:
        table("critical_batch_size"),
    log:
        f"{R}/logs/tables/critical_batch_size.log",
    conda:
        ENV
    params:
        n_boot=config["cbs"]["bootstrap"],
        winner_share=config["claims"]["bstar_share"],
    script:
        "../scripts/critical_batch_size.py"


rule k2:
    """K² = ‖∇F_b‖² along the fixed-epoch runs, per cell: sup, mean and final."""
    input:
        runs=ALL_EPOCH_RUNS,
        accuracy=table("accuracy"),
        code=lib("collect", "tables"),
    output:
        table("k2"),
    log:
        f"{R}/logs/tables/k2.log",
    conda:
        ENV
    script:
        "../scripts/k2.py"


rule variance:
    """C² bounds from b* beside K² pooled per optimizer; config k2_statistic picks δ's K²."""
    input:
        cbs=table("critical_batch_size"),
        runs=ALL_EPOCH_RUNS,
        accuracy=table("accuracy"),
        code=lib("cbs", "collect", "theory", "tables"),
    output:
        table("variance"),
    log:
        f"{R}/logs/tables/variance.log",
    conda:
        ENV
    params:
        statistic=config["k2_statistic"],
    script:
        "../scripts/variance.py"


rule delta:
    input:
        variance=table("variance"),
        code=lib("cbs", "theory", "tables"),
    output:
        table("delta"),
    log:
        f"{R}/logs/tables/delta.log",
    conda:
        ENV
    params:
        batch_sizes=sorted(
            set(config["batch_sizes"])
            | set(config["sharpness"].get("batch_sizes", []))
        ),
    script:
        "../scripts/delta.py"


rule accuracy:
    input:
        runs=ALL_EPOCH_RUNS,
        code=lib("collect", "tables"),
    output:
        table("accuracy"),
    log:
        f"{R}/logs/tables/accuracy.log",
    conda:
        ENV
    params:
        collapse=COLLAPSE,
    script:
        "../scripts/accuracy.py"


rule claims:
    """The claims ledger: each of the article's claims, its statistic and computed verdict."""
    input:
        critical_batch_size=table("critical_batch_size"),
        variance=table("variance"),
        delta=table("delta"),
        accuracy=table("accuracy"),
        sharpness=[table("sharpness")] if config["sharpness"]["lrs"] else [],
        noise=[table("noise")] if NOISE["epochs"] or CBS_MEASURED else [],
        code=lib("claims", "consistency", "correlate", "theory", "tables"),
    output:
        table("claims"),
    log:
        f"{R}/logs/tables/claims.log",
    conda:
        ENV
    params:
        lr=config["lr"],
        epsilon=config["cbs"]["epsilon"],
        n_train=train_size(config),
        batch_sizes=config["batch_sizes"],
        adaptive=config["sharpness"]["adaptive"],
        thresholds=config["claims"],
    script:
        "../scripts/claims.py"
