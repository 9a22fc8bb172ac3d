from sgdsmooth import collect, tables

tables.write_table(collect.accuracy(snakemake.input.runs), snakemake.output[0], "accuracy")
