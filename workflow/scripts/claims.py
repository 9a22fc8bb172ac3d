from sgdsmooth import claims, tables

inp, p = snakemake.input, snakemake.params
ledger = claims.ledger(
    tables.read_table(inp.critical_batch_size, "critical_batch_size"),
    tables.read_table(inp.variance, "variance"),
    tables.read_table(inp.delta, "delta"),
    tables.read_table(inp.accuracy, "accuracy"),
    tables.read_table(inp.sharpness[0], "sharpness") if inp.sharpness else None,
    noise=tables.read_table(inp.noise[0], "noise") if inp.noise else None,
    lr=p.lr,
    epsilon=p.epsilon,
    n_train=p.n_train,
    batch_sizes=p.batch_sizes,
    adaptive=p.adaptive,
    cfg=p.thresholds,
    n_boot=p.thresholds["bootstrap"],
)
tables.write_table(ledger, snakemake.output[0], "claims", {"thresholds": dict(p.thresholds)})
