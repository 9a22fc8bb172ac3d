import importlib

module = importlib.import_module(f"sgdsmooth.figures.{snakemake.params.module}")
inputs = {name: path for name, path in snakemake.input.items() if name != "code"}
module.draw(**inputs, pdf=snakemake.output.pdf, png=snakemake.output.png, **snakemake.params.args)
