from sgdsmooth import collect, tables

tables.write_table(collect.k2_table(snakemake.input.runs), snakemake.output[0], "k2")
