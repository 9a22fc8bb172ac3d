# archive/<experiment>/: a finished study's tables, figures, paper and a stamp (commit, config
# hash, device, versions), to commit to git. `--config source=archive` rebuilds the figures and
# the paper from it without training (common.smk: from_source); there this rule does not
# exist, so that no archive path is an output and nothing upstream of the tables is planned.

if not ARCHIVED:

    localrules:
        archive,

    rule archive:
        """Copy the tables, figures, paper and what the paper quotes besides (the training
        jobs' benchmarks, one run's metadata) from results/, and stamp them."""
        input:
            tables=ALL_TABLES,
            figures=ALL_FIGURES,
            paper=PAPER_PDF if config["archive_paper"] else [],
            benchmarks=BENCHMARKS,
            runs=ALL_EPOCH_RUNS + ALL_CBS_RUNS,  # their metadata name the training device
            example_run=ALL_EPOCH_RUNS[0],
            code=lib("archive", "tables"),
        output:
            f"{A}/stamp.json",  # written last; the folder is replaced as a whole
        log:
            f"{R}/logs/archive.log",
        conda:
            ENV
        params:
            # results/<experiment>/, from a table's path (a literal prefix would trip --lint)
            results=lambda w, input: os.path.dirname(os.path.dirname(input.tables[0])),
            # archive/, the folder of archives: the only one whose subfolder may be replaced
            archives=lambda w, output: os.path.dirname(os.path.dirname(output[0])),
            config=STUDY_CONFIG,
            repo=workflow.basedir,
        script:
            "../scripts/archive.py"

else:

    rule archive:
        """Under `source: archive` there is nothing to archive: say so rather than look for a file."""
        log:
            f"{R}/logs/archive.log",
        conda:
            ENV
        params:
            message=f"source: archive reads {A}/; archive from results/ with source: results",
        shell:
            "echo '{params.message}' | tee {log} >&2; exit 1"

    rule archive_paper:
        """An archive made without its paper (archive_paper: false, on a machine without
        TeX) gets the paper built from it."""
        input:
            PAPER_PDF,
        output:
            f"{A}/paper.pdf",
        log:
            f"{R}/logs/archive_paper.log",
        conda:
            ENV
        shell:
            "cp -v {input} {output} > {log} 2>&1"
