# Degree of smoothing of SGD, SHB and NSHB: Sato & Iiduka reproduced as a workflow.
# Default: the embedded digits config (CPU, minutes). The article: --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


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
    input:
        ALL_TABLES,
        ALL_FIGURES,
        PAPER_PDF,
    default_target: True
