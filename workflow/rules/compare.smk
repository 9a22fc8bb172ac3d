# The rerun check: `bin/run compare` rebuilds the tables (training what is missing) and
# compares them with archive/<experiment>/: the verdicts that changed, and each number's change
# against its own interval (sgdsmooth.compare). It writes results/<experiment>/compare.md and
# changes nothing in the archive. Under `source: archive` there is nothing to rebuild.

if not ARCHIVED:

    localrules:
        compare,

    rule compare:
        """Rebuilt tables against the archive's: changed verdicts, changes against intervals."""
        input:
            new=ALL_TABLES,
            old=[
                f"{A}/tables/{n}.parquet"
                for n in TABLE_NAMES
                if os.path.exists(f"{A}/tables/{n}.parquet")
            ],
            code=lib("compare"),
        output:
            f"{R}/compare.md",
        log:
            f"{R}/logs/compare.log",
        conda:
            ENV
        script:
            "../scripts/compare.py"
