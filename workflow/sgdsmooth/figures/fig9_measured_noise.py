"""Figure 9 (beyond the article): what the article bounds, measured on F_b (sgdsmooth.noise).

(a) measured C² (the run's own batches; hollow: per-example gradients in train-mode batches)
    against b, with the C² bound inferred from b* as a dashed line; (b) the empirical degree
    of smoothing η·sqrt(E‖d_t − ∇F_b‖²) against the formula's δ; (c) the gradient noise scale
    B_simple = C²/K² against b, with each optimizer's b* marked.
"""

from .. import tables
from . import (
    LABELS,
    ORDER,
    PALETTE,
    log2_batch_axis,
    main_study,
    mean_band,
    plt,
    relabel_legend,
    save,
    setup,
)


def draw(
    noise: str, variance: str, delta: str, critical_batch_size: str, pdf: str, png: str, lr: float
) -> None:
    setup()
    n = tables.read_table(noise, "noise")
    n = main_study(n[n.protocol == "epochs"], lr)  # the fixed-epoch runs' (CBS runs': claims)
    n = n[n.epoch == n.epoch.max()]  # the last measurement of every run
    var = main_study(tables.read_table(variance, "variance"), lr)
    d = main_study(tables.read_table(delta, "delta"), lr)
    crit = main_study(tables.read_table(critical_batch_size, "critical_batch_size"), lr)
    opts = [o for o in ORDER if o in set(n.optimizer)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))

    ax = axes[0]
    mean_band(ax, n, "batch_size", "c2")
    for opt in opts:
        exact = n[n.optimizer == opt].groupby("batch_size").c2_per_example.mean()
        ax.scatter(
            exact.index, exact.values, facecolors="none", edgecolors=PALETTE[opt], s=30, zorder=3
        )
        bound = var[var.optimizer == opt].c2_bound.dropna()  # none without b*
        if len(bound):
            ax.axhline(float(bound.iloc[0]), color=PALETTE[opt], ls="--", lw=1)
    log2_batch_axis(ax)
    ax.set(yscale="log", ylabel="$C^2$", title="(a) measured (line) vs inferred bound (dashed)")
    relabel_legend(ax, fontsize=8)

    ax = axes[1]
    mean_band(ax, n, "batch_size", "delta_empirical", legend=False)
    for opt in opts:
        fine = d[(d.optimizer == opt) & (d.grid == "fine")]
        ax.plot(
            fine.batch_size,
            fine.delta,
            color=PALETTE[opt],
            ls="--",
            lw=1,
            label=f"{LABELS[opt]}, eqs. 12–14",
        )
    log2_batch_axis(ax)
    ax.set(
        yscale="log",
        ylabel=r"$\delta$",
        title=r"(b) empirical $\eta\sqrt{E\|\omega\|^2}$ vs formula (dashed)",
    )
    ax.legend(fontsize=7)

    ax = axes[2]
    mean_band(ax, n, "batch_size", "noise_scale")
    for opt in opts:
        star = crit[(crit.optimizer == opt) & crit.is_critical]
        if len(star):
            ax.axvline(float(star.batch_size.iloc[0]), color=PALETTE[opt], ls=":", lw=1.5)
    log2_batch_axis(ax)
    ax.set(
        yscale="log",
        ylabel=r"$B_{\mathrm{simple}} = C^2 / K^2$",
        title="(c) noise scale; dotted: measured $b^*$",
    )
    relabel_legend(ax, fontsize=8)
    save(fig, pdf, png)
