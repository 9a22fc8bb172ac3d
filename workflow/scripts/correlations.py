from sgdsmooth import collect, correlate, tables

frame = tables.read_table(snakemake.input.sharpness, "sharpness")
accuracy = tables.read_table(snakemake.input.accuracy, "accuracy")
frame = collect.without_collapsed(frame, accuracy)  # a collapsed network is no evidence
tables.write_table(correlate.correlations(frame), snakemake.output[0], "correlations")
