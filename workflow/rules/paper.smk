# The reproduction report: tables and figures → generated TeX → paper.pdf (latexmk).
# Editing paper/*.tex rebuilds only the PDF; a changed figure rebuilds it and the PDF.
# Under `source: archive` the tables, benchmarks and example run come from the archive.

PAPER_DIR = f"{R}/paper"
PAPER_PDF = f"{PAPER_DIR}/paper.pdf"
GENERATED = [
    f"{PAPER_DIR}/generated/{n}.tex"
    for n in (
        "numbers",
        "bstar",
        "claims",
        "comparison",
        "cbs",
        "figures",
        "sharpness",
        "noise",
        "reproducibility",
    )
]
# The HTML report's front text (Snakefile's `report:`): what the report is, and where from.
REPORT_FRONT = f"{R}/paper/report-front.rst"
TABLE_NAMES = ["cbs_runs", "critical_batch_size", "k2", "variance", "delta", "accuracy"]
if SHARP["lrs"]:  # Figure 8 and its tables exist only when the config asks for them
    TABLE_NAMES += ["sharpness", "correlations"]
    FIGURE_NAMES = FIGURE_NAMES + ["fig8_sharpness"]
if NOISE["epochs"] or CBS_MEASURED:
    TABLE_NAMES += ["noise"]
if NOISE["epochs"]:  # Figure 9 shows the fixed-epoch runs' measurements
    FIGURE_NAMES = FIGURE_NAMES + ["fig9_measured_noise"]
TABLE_NAMES += ["claims"]
ALL_TABLES = [table(n) for n in TABLE_NAMES]  # as the table rules write them
TABLES_IN = [table_in(n) for n in TABLE_NAMES]  # as the figures and the paper read them
ALL_FIGURES = [
    f"{R}/figures/{n}.{ext}"
    for n in FIGURE_NAMES
    for ext in ("pdf", "png", "caption.rst")
]
BENCHMARKS = sorted(
    {train_benchmark(p, c) for p in ("cbs", "epochs") for c in CELLS[p]}
)


localrules:
    paper_generated,
    paper,


rule paper_generated:
    input:
        tables=TABLES_IN,
        figures=[f"{R}/figures/{n}.pdf" for n in FIGURE_NAMES],
        captions=[f"{R}/figures/{n}.caption.rst" for n in FIGURE_NAMES],  # as drawn
        benchmarks=[from_source(b) for b in BENCHMARKS],  # the compute hours it quotes
        example_run=from_source(ALL_EPOCH_RUNS[0]),  # its metadata names the device
        code=lib("paper", "tables", "theory"),
    output:
        GENERATED,
    log:
        f"{R}/logs/paper/generated.log",
    conda:
        ENV
    params:
        config=STUDY_CONFIG,
    script:
        "../scripts/paper_generated.py"


rule paper:
    input:
        sources=["paper/paper.tex"],
        generated=GENERATED,
        figures=[f"{R}/figures/{n}.pdf" for n in FIGURE_NAMES],
        example_run=from_source(ALL_EPOCH_RUNS[0]),  # its metadata names the device
        stamp=f"{A}/stamp.json" if ARCHIVED else [],  # the commit that measured
        code=lib("paper", "archive", "tables"),
    output:
        pdf=PAPER_PDF,
        # where the PDF came from: written by the build itself (paper.tex alone may change)
        provenance=f"{PAPER_DIR}/generated/provenance.tex",
        front=REPORT_FRONT,
    log:
        f"{R}/logs/paper/latexmk.log",
    conda:
        ENV
    params:
        config=STUDY_CONFIG,
        config_changes=CONFIG_CHANGES,  # from the archive's config (allow_config_change)
    script:
        "../scripts/paper_build.py"
