"""Figure 6: final test accuracy against batch size (mean and min–max over seeds)."""

from .. import tables
from . import log2_batch_axis, main_study, mean_band, plt, relabel_legend, save, setup


def draw(accuracy: str, pdf: str, png: str, lr: float) -> None:
    setup()
    acc = main_study(tables.read_table(accuracy, "accuracy"), lr)
    fig, ax = plt.subplots(figsize=(6, 4))
    mean_band(ax, acc[acc.status == "ok"], "batch_size", "test_accuracy")
    bad = acc[acc.status != "ok"]
    if len(bad):  # diverged runs have no accuracy: show where they were, at the bottom
        ax.scatter(bad.batch_size, [ax.get_ylim()[0]] * len(bad), marker="x", color="red", label="diverged", zorder=3)
    log2_batch_axis(ax)
    ax.set_ylabel("test accuracy")
    relabel_legend(ax)
    save(fig, pdf, png)
