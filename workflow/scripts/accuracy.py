from sgdsmooth import collect, tables

runs = collect.accuracy(snakemake.input.runs)
settings = collect.collapse_settings(snakemake.params.collapse)
tables.write_table(collect.mark_collapsed(runs, settings), snakemake.output[0], "accuracy")
