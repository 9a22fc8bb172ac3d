from sgdsmooth import collect, tables

accuracy = tables.read_table(snakemake.input.accuracy, "accuracy")
tables.write_table(collect.k2_table(snakemake.input.runs, accuracy), snakemake.output[0], "k2")
