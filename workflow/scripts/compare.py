from pathlib import Path

import pandas as pd

from sgdsmooth import compare

# The archive's tables may predate today's schemas (that is what is being compared), so they
# are read as they are, and so are the rebuilt ones, by the file name's table.
new = {Path(p).stem: pd.read_parquet(p) for p in snakemake.input.new}
old = {Path(p).stem: pd.read_parquet(p) for p in snakemake.input.old}
# archive/<experiment>/, from a table's path; no archive: nothing to compare with, said so.
label = str(Path(snakemake.input.old[0]).parent.parent) if snakemake.input.old else "no archive"
text = compare.report(new, old, label)
Path(snakemake.output[0]).write_text(text, encoding="utf-8")
print(text)
