from sgdsmooth import correlate, tables

frame = tables.read_table(snakemake.input.sharpness, "sharpness")
tables.write_table(correlate.correlations(frame), snakemake.output[0], "correlations")
