from sgdsmooth import collect, tables

accuracy = tables.read_table(snakemake.input.accuracy, "accuracy")
delta = tables.read_table(snakemake.input.delta, "delta")
tables.write_table(
    collect.sharpness(snakemake.input.runs, accuracy, delta), snakemake.output[0], "sharpness"
)
