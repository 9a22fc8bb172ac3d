from sgdsmooth import cbs, tables

runs = tables.read_table(snakemake.input.runs, "cbs_runs")
tables.write_table(
    cbs.critical_batch_sizes(runs, snakemake.params.n_boot, snakemake.params.winner_share),
    snakemake.output[0],
    "critical_batch_size",
)
