from sgdsmooth import collect, tables

noise = collect.checked_tables(snakemake.input.runs, "noise")
accuracy = tables.read_table(snakemake.input.accuracy, "accuracy")
tables.write_table(collect.without_collapsed(noise, accuracy), snakemake.output[0], "noise")
