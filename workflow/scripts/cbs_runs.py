from sgdsmooth import collect, tables

tables.write_table(collect.cbs_runs(snakemake.input.runs), snakemake.output[0], "cbs_runs")
