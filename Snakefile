# Degree of smoothing of SGD, SHB and NSHB: Sato & Iiduka reproduced as a workflow.
# Default: the embedded digits config (CPU, minutes). The article: --configfile config/paper.yaml
# `snakemake archive` writes archive/<experiment>/ to commit; --config source=archive rebuilds from it.
from snakemake.utils import min_version

min_version("9.0")


# The default config, unless one is given with --configfile: then that one alone counts
# (Snakemake would otherwise merge the two, so a map like `optimizers` could only grow).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/sharpness.smk"
include: "workflow/rules/noise.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/archive.smk"
include: "workflow/rules/compare.smk"


# `snakemake --report report.html` opens on this text, written with the paper (paper.smk).
report: REPORT_FRONT


rule all:
    default_target: True
    input:
        TABLES_IN,
        ALL_FIGURES,
        PAPER_PDF,
        # Every fixed-epoch run's final weights, though only Figure 8's cells read theirs:
        # Snakemake reruns a job only for the outputs that some rule asks for, so a deleted
        # final.pt would otherwise never be rebuilt.
        [] if ARCHIVED else ALL_EPOCH_WEIGHTS,
