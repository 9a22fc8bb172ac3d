# One rule per figure; `snakemake fig4` rebuilds Figure 4 alone. Each figure depends on its
# own module and the shared style, so editing one figure's code reruns only that figure.
# They read tables through table_in: results/, or archive/ under `source: archive`.

FIG = f"{R}/figures/{{name}}"
MAIN_LR = config["lr"]
FIGURE_NAMES = [
    "fig3_rastrigin",
    "fig4_sfo",
    "fig5_delta",
    "fig6_accuracy",
    "fig7_delta_accuracy",
]


localrules:
    fig3,
    fig4,
    fig5,
    fig6,
    fig7,


rule fig3:
    input:
        **figure_code("fig3_rastrigin", "theory"),
    output:
        **figure_outputs("fig3_rastrigin"),
    log:
        f"{R}/logs/figures/fig3_rastrigin.log",
    conda:
        ENV
    params:
        module="fig3_rastrigin",
        args={},
    script:
        "../scripts/figure.py"


rule fig4:
    input:
        **figure_code("fig4_sfo"),
        cbs_runs=table_in("cbs_runs"),
        critical_batch_size=table_in("critical_batch_size"),
    output:
        **figure_outputs("fig4_sfo"),
    log:
        f"{R}/logs/figures/fig4_sfo.log",
    conda:
        ENV
    params:
        module="fig4_sfo",
        args={"lr": MAIN_LR},
    script:
        "../scripts/figure.py"


rule fig5:
    input:
        **figure_code("fig5_delta"),
        delta=table_in("delta"),
    output:
        **figure_outputs("fig5_delta"),
    log:
        f"{R}/logs/figures/fig5_delta.log",
    conda:
        ENV
    params:
        module="fig5_delta",
        args={"lr": MAIN_LR},
    script:
        "../scripts/figure.py"


rule fig6:
    input:
        **figure_code("fig6_accuracy"),
        accuracy=table_in("accuracy"),
    output:
        **figure_outputs("fig6_accuracy"),
    log:
        f"{R}/logs/figures/fig6_accuracy.log",
    conda:
        ENV
    params:
        module="fig6_accuracy",
        args={"lr": MAIN_LR, "train_loss_max": config["claims"]["train_loss_max"]},
    script:
        "../scripts/figure.py"


rule fig7:
    input:
        **figure_code("fig7_delta_accuracy"),
        accuracy=table_in("accuracy"),
        delta=table_in("delta"),
    output:
        **figure_outputs("fig7_delta_accuracy"),
    log:
        f"{R}/logs/figures/fig7_delta_accuracy.log",
    conda:
        ENV
    params:
        module="fig7_delta_accuracy",
        args={"lr": MAIN_LR, "bands": config["figures"]["accuracy_bands"]},
    script:
        "../scripts/figure.py"
