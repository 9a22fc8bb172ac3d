"""Figure 7: δ vs b, accuracy vs b and accuracy vs δ, over accuracy bands. δ_SHB carries the
band that K²'s summaries (sup, mean, final) span: a shaded band on the left, horizontal bars
on the right."""

from .. import collect, tables
from . import LABELS, ORDER, PALETTE, main_study, mean_band, plt, relabel_legend, save, setup


def accuracy_with_delta(accuracy, delta, lr):
    acc = main_study(tables.read_table(accuracy, "accuracy"), lr)
    d = main_study(tables.read_table(delta, "delta"), lr)
    d = d[d.grid == "config"].astype({"batch_size": "int64"})
    return acc.merge(
        d[["optimizer", "lr", "beta", "batch_size", "delta", "delta_low", "delta_high"]],
        on=["optimizer", "lr", "beta", "batch_size"],
    ), d


def _bands(ax, low, high):
    ax.axhspan(0, low, color="tab:red", alpha=0.08, lw=0)
    ax.axhspan(low, high, color="tab:blue", alpha=0.08, lw=0)
    ax.axhspan(high, 1, color="tab:green", alpha=0.08, lw=0)


def draw(accuracy: str, delta: str, pdf: str, png: str, lr: float, bands=(0.65, 0.70)) -> None:
    setup()
    acc, d = accuracy_with_delta(accuracy, delta, lr)
    ok = collect.finished(acc)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    for opt in [o for o in ORDER if o in set(d.optimizer)]:
        mine = d[d.optimizer == opt]
        # δ_SGD and δ_NSHB can coincide exactly (as in the article): dash NSHB so both show.
        ax.plot(
            mine.batch_size,
            mine.delta,
            marker="o",
            color=PALETTE[opt],
            label=LABELS[opt],
            ls="--" if opt == "nshb" else "-",
        )
        if (mine.delta_high > mine.delta_low).any():
            ax.fill_between(
                mine.batch_size,
                mine.delta_low,
                mine.delta_high,
                color=PALETTE[opt],
                alpha=0.2,
                lw=0,
            )
    # Without b* there is no δ (NaN): a log axis needs at least one value, else it stays linear.
    has_delta = bool((d.delta > 0).any())
    ax.set(xscale="log", xlabel="batch size $b$", ylabel=r"$\delta$")
    if has_delta:
        ax.set_yscale("log")
    else:
        ax.set_xlim(d.batch_size.min(), d.batch_size.max())
        ax.text(0.5, 0.5, "no δ: no optimizer has a b*", ha="center", transform=ax.transAxes)
    relabel_legend(ax)
    mean_band(axes[1], ok, "batch_size", "test_accuracy")
    axes[1].set(xscale="log", xlabel="batch size $b$", ylabel="test accuracy")
    with_delta = ok[ok.delta > 0]
    if len(with_delta):
        mean_band(axes[2], with_delta, "delta", "test_accuracy")
    cells = (
        ok.groupby(["optimizer", "batch_size"])
        .agg(
            acc=("test_accuracy", "mean"), low=("delta_low", "first"), high=("delta_high", "first")
        )
        .reset_index()
    )
    for c in cells[cells.high > cells.low].itertuples():
        axes[2].plot([c.low, c.high], [c.acc, c.acc], color=PALETTE[c.optimizer], lw=1, alpha=0.6)
    axes[2].set(xlabel=r"degree of smoothing $\delta$", ylabel="test accuracy")
    if len(with_delta):
        axes[2].set_xscale("log")
    lo = min(ok.test_accuracy.min() - 0.02, bands[0] - 0.02) if len(ok) else 0
    for ax in axes[1:]:
        ax.set_ylim(
            max(lo, 0),
            min(1, max(ok.test_accuracy.max() + 0.01, bands[1] + 0.02)) if len(ok) else 1,
        )
        _bands(ax, *bands)
        relabel_legend(ax, fontsize=8)
    save(fig, pdf, png)
