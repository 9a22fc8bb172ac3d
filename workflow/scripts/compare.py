from pathlib import Path

import pandas as pd

from sgdsmooth import compare

# The archive's tables may predate today's schemas (that is what is being compared), so they
# are read as they are, and so are the rebuilt ones, by the file name's table.
new = {Path(p).stem: pd.read_parquet(p) for p in snakemake.input.new}
old = {Path(p).stem: pd.read_parquet(p) for p in snakemake.input.old}
text = compare.report(new, old, snakemake.params.label)
Path(snakemake.output[0]).write_text(text, encoding="utf-8")
print(text)
