"""Figure 5: degree of smoothing δ against batch size, from the estimated C² (and K²)."""

from .. import tables
from . import LABELS, ORDER, PALETTE, log2_batch_axis, main_study, plt, save, setup


def draw(delta: str, pdf: str, png: str, lr: float) -> None:
    setup()
    d = main_study(tables.read_table(delta, "delta"), lr)
    fig, ax = plt.subplots(figsize=(6, 4))
    for opt in [o for o in ORDER if o in set(d.optimizer)]:
        fine = d[(d.optimizer == opt) & (d.grid == "fine")]
        grid = d[(d.optimizer == opt) & (d.grid == "config")]
        ax.plot(fine.batch_size, fine.delta, color=PALETTE[opt], label=LABELS[opt],
                ls="--" if opt == "nshb" else "-")
        ax.scatter(grid.batch_size, grid.delta, color=PALETTE[opt], s=18, zorder=3)
    log2_batch_axis(ax)
    ax.set_yscale("log")
    ax.set_ylabel(r"degree of smoothing $\delta$")
    ax.legend()
    save(fig, pdf, png)
