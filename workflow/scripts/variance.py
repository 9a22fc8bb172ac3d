from sgdsmooth import cbs, collect, tables

table = tables.read_table(snakemake.input.cbs, "critical_batch_size")
accuracy = tables.read_table(snakemake.input.accuracy, "accuracy")
k2 = collect.k2_pooled(snakemake.input.runs, snakemake.params.statistic, accuracy)
tables.write_table(cbs.variance_bounds(table, k2), snakemake.output[0], "variance")
