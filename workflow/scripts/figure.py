import importlib
from pathlib import Path

from sgdsmooth import archive

module = importlib.import_module(f"sgdsmooth.figures.{snakemake.params.module}")
inputs = {name: path for name, path in snakemake.input.items() if name not in ("code", "caption")}
module.draw(**inputs, pdf=snakemake.output.pdf, png=snakemake.output.png, **snakemake.params.args)
# The caption the report and the paper show: its text, and the rule, code and commit that drew
# this figure (the commit of this run, not of a later one that left the figure as it was).
state = archive.build_state(archive.repo_root(snakemake.scriptdir))
text = Path(snakemake.input.caption).read_text(encoding="utf-8")
Path(snakemake.output.caption).write_text(
    archive.figure_caption(text, snakemake.rule, snakemake.params.module, state), encoding="utf-8"
)
