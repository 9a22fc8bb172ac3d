from sgdsmooth import collect, tables

noise = collect.checked_tables(snakemake.input.runs, "noise")
accuracy = tables.read_table(snakemake.input.accuracy, "accuracy")
cbs_runs = tables.read_table(snakemake.input.cbs_runs, "cbs_runs")
tables.write_table(
    collect.noise_without_collapsed(noise, accuracy, cbs_runs), snakemake.output[0], "noise"
)
