# Beyond the article: measured C², K², search-direction noise and gradient noise scale.


localrules:
    noise_table,
    fig9,


rule noise_table:
    """The runs' noise measurements (fixed-epoch runs, and CBS runs where noise.cbs_*
    asks), less those of runs the accuracy or cbs_runs table marks collapsed
    (collect.without_collapsed): a network at chance says nothing about training's noise.
    """
    input:
        runs=ALL_NOISE + ALL_CBS_NOISE,
        accuracy=table("accuracy"),
        cbs_runs=table("cbs_runs"),
        code=lib("collect", "tables"),
    output:
        table("noise"),
    log:
        f"{R}/logs/tables/noise.log",
    conda:
        ENV
    script:
        "../scripts/noise_table.py"


rule fig9:
    input:
        **figure_code("fig9_measured_noise"),
        noise=table_in("noise"),
        variance=table_in("variance"),
        delta=table_in("delta"),
        critical_batch_size=table_in("critical_batch_size"),
    output:
        **figure_outputs("fig9_measured_noise"),
    log:
        f"{R}/logs/figures/fig9_measured_noise.log",
    conda:
        ENV
    params:
        module="fig9_measured_noise",
        args={"lr": MAIN_LR},
    script:
        "../scripts/figure.py"
