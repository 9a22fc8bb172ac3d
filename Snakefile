# Degree of smoothing of SGD, SHB and NSHB: Sato & Iiduka reproduced as a workflow.
# Default: the embedded digits config (CPU, minutes). The article: --configfile config/paper.yaml
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


rule all:
    default_target: True
    input:
        ALL_TABLES,
        ALL_FIGURES,
        PAPER_PDF,
