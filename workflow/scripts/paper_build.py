from pathlib import Path

from sgdsmooth import archive, paper, tables

inp, out, cfg = snakemake.input, snakemake.output, snakemake.params.config
# Where this PDF comes from: the checkout building it (the commit of this build, as each
# figure's caption carries its own) and, rebuilt from an archive, the one that measured it.
measured = archive.read_stamp(Path(inp.stamp).parent) if inp.stamp else None
changes = snakemake.params.config_changes  # allowed by allow_config_change: on the title page
state = archive.build_state(archive.repo_root(snakemake.scriptdir))
prov = paper.provenance(state, cfg, measured, changes=changes)
device = tables.read_metadata(inp.example_run)["device"]
paper.write_provenance(out.provenance, out.front, prov, cfg["experiment"], device)

source = Path(inp.sources[0]).parent
generated = Path(inp.generated[0]).parent
paper.build_pdf(source, generated, out.pdf, snakemake.log[0])
