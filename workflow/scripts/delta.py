from sgdsmooth import cbs, tables

variance = tables.read_table(snakemake.input.variance, "variance")
tables.write_table(
    cbs.delta_table(variance, snakemake.params.batch_sizes), snakemake.output[0], "delta"
)
