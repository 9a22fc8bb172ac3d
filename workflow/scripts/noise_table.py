from sgdsmooth import tables

tables.write_table(
    tables.concat_tables(snakemake.input.runs, "noise"), snakemake.output[0], "noise"
)
