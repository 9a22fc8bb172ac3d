"""Figure 4: SFO complexity T·b against batch size, b* marked (a dashed hollow square where it
is not established, nothing where there is none), censored and collapsed runs shown."""

from .. import tables
from . import LABELS, ORDER, PALETTE, log2_batch_axis, main_study, mean_band, plt, save, setup


def draw(cbs_runs: str, critical_batch_size: str, pdf: str, png: str, lr: float) -> None:
    setup()
    runs = main_study(tables.read_table(cbs_runs, "cbs_runs"), lr)
    crit = main_study(tables.read_table(critical_batch_size, "critical_batch_size"), lr)
    opts = [o for o in ORDER if o in set(runs.optimizer)]
    fig, axes = plt.subplots(
        1, len(opts), figsize=(4.2 * len(opts), 3.8), sharey=True, squeeze=False
    )
    for ax, opt in zip(axes[0], opts):
        mine = runs[runs.optimizer == opt]
        good = mine[mine.status == "reached"]  # reached ε and did not collapse
        if len(good):
            mean_band(ax, good, "batch_size", "sfo", legend=False)
        # Runs outside the mean, at steps·b where they stopped: censored ones bound the SFO
        # from below; collapsed ones have no part in the mean or in b*.
        for status, marker, color, label in (
            ("censored", "^", "grey", "censored (SFO ≥)"),
            ("collapsed", "x", "tab:red", "collapsed (not counted)"),
        ):
            some = mine[mine.status == status]
            if len(some):
                ax.scatter(
                    some.batch_size, some.sfo, marker=marker, color=color, zorder=3, label=label
                )
        star = crit[(crit.optimizer == opt) & crit.is_critical]
        if len(star) and star.established.iloc[0]:
            ax.scatter(
                star.batch_size,
                star.sfo_mean,
                s=160,
                facecolors="none",
                edgecolors="black",
                linewidths=1.5,
                zorder=4,
            )
            ax.scatter(
                star.batch_size,
                star.sfo_mean,
                s=50,
                facecolors="none",
                edgecolors="black",
                linewidths=1.5,
                zorder=4,
                label=f"$b^* = {int(star.batch_size.iloc[0])}$",
            )
        elif len(star):  # the argmin, not established: the paper's table gives the reason
            ax.scatter(
                star.batch_size,
                star.sfo_mean,
                s=110,
                marker="s",
                facecolors="none",
                edgecolors="black",
                linewidths=1.2,
                linestyle="--",
                zorder=4,
                label="$b^*$ undetermined",
            )
        ax.set_yscale("log")
        log2_batch_axis(ax)
        ax.set_title(f"{LABELS[opt]}", color=PALETTE[opt])
        ax.set_ylabel("SFO complexity $T\\,b$")
        ax.legend(
            fontsize=8, loc="best"
        )  # the curve decides where: upper left covered b = 2⁴ on the default
    save(fig, pdf, png)
