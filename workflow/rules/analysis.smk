# Run tables → study tables: cbs_runs → critical_batch_size → variance (C², K²) → delta,
# and accuracy. Cheap, so they run on the submitting host under SLURM too.


localrules:
    cbs_runs,
    critical_batch_size,
    variance,
    delta,
    accuracy,


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
    script:
        "../scripts/critical_batch_size.py"


rule variance:
    input:
        cbs=table("critical_batch_size"),
        runs=ALL_EPOCH_RUNS,
        code=lib("cbs", "collect", "theory", "tables"),
    output:
        table("variance"),
    log:
        f"{R}/logs/tables/variance.log",
    conda:
        ENV
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
    script:
        "../scripts/accuracy.py"
