"""Figure 5: degree of smoothing δ against batch size, from the estimated C² (and K²).

δ_SHB is drawn with the band that K²'s three summaries (sup, mean, final) span; bars at the
config's batch sizes give δ over b*'s interval; a curve whose b* is not established is dotted."""

from .. import tables
from . import LABELS, ORDER, PALETTE, log2_batch_axis, main_study, plt, save, setup


def draw(delta: str, pdf: str, png: str, lr: float) -> None:
    setup()
    d = main_study(tables.read_table(delta, "delta"), lr)
    fig, ax = plt.subplots(figsize=(6, 4))
    for opt in [o for o in ORDER if o in set(d.optimizer)]:
        fine = d[(d.optimizer == opt) & (d.grid == "fine")]
        grid = d[(d.optimizer == opt) & (d.grid == "config")]
        settled = bool(grid.established.all())
        label = LABELS[opt] + (
            "" if settled else " (no b*)" if grid.delta.isna().all() else " (b* undetermined)"
        )
        ax.plot(
            fine.batch_size,
            fine.delta,
            color=PALETTE[opt],
            label=label,
            ls=(":" if not settled else "--" if opt == "nshb" else "-"),
        )
        if (fine.delta_high > fine.delta_low).any():
            ax.fill_between(
                fine.batch_size,
                fine.delta_low,
                fine.delta_high,
                color=PALETTE[opt],
                alpha=0.2,
                lw=0,
                label=f"{LABELS[opt]}: span over K² sup, mean, final",
            )
        ax.scatter(grid.batch_size, grid.delta, color=PALETTE[opt], s=18, zorder=3)
        # δ over b*'s interval (through the C² bound), at the configured K².
        ok = grid.delta.notna() & grid.delta_ci_low.notna() & grid.delta_ci_high.notna()
        if ok.any():
            g = grid[ok]
            shift = {"sgd": 0.96, "shb": 1.0, "nshb": 1.04}[opt]  # SGD's and NSHB's often coincide
            ax.errorbar(
                g.batch_size * shift,
                g.delta,
                yerr=[
                    (g.delta - g.delta_ci_low).clip(lower=0),
                    (g.delta_ci_high - g.delta).clip(lower=0),
                ],
                fmt="none",
                ecolor=PALETTE[opt],
                elinewidth=1,
                capsize=2,
                zorder=3,
            )
    log2_batch_axis(ax)
    if (d.delta > 0).any():  # without b* there is no δ (NaN), and a log axis needs a value
        ax.set_yscale("log")
    else:
        ax.set_xlim(d.batch_size.min(), d.batch_size.max())
        ax.text(0.5, 0.5, "no δ: no optimizer has a b*", ha="center", transform=ax.transAxes)
    ax.set_ylabel(r"degree of smoothing $\delta$")
    ax.legend(fontsize=8)
    save(fig, pdf, png)
