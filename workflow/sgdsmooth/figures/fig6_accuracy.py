"""Figure 6: final test accuracy and final training loss against batch size (mean and
min–max over seeds). The training loss shows where a batch size did not fit the training set
in the epochs it had, which accuracy alone would blame on δ. Collapsed runs are in the mean
(collect.finished: chance accuracy is their result) and ringed in grey."""

from .. import collect, tables
from . import log2_batch_axis, main_study, mean_band, plt, relabel_legend, save, setup


def draw(accuracy: str, pdf: str, png: str, lr: float, train_loss_max: float | None = None) -> None:
    setup()
    acc = main_study(tables.read_table(accuracy, "accuracy"), lr)
    ok = collect.finished(acc)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column, label in (
        (axes[0], "test_accuracy", "test accuracy"),
        (axes[1], "train_loss", "final training loss (train mode)"),
    ):
        mean_band(ax, ok, "batch_size", column)
        dead = acc[acc.status == "collapsed"]
        if len(dead):  # in the mean, ringed so that a reader sees where they are
            ax.scatter(
                dead.batch_size,
                dead[column],
                marker="o",
                facecolors="none",
                edgecolors="grey",
                label="collapsed",
                zorder=3,
            )
        bad = acc[acc.status == "diverged"]
        if len(bad):  # diverged runs have no numbers: show where they were, at the bottom
            ax.scatter(
                bad.batch_size,
                [ax.get_ylim()[0]] * len(bad),
                marker="x",
                color="red",
                label="diverged",
                zorder=3,
            )
        log2_batch_axis(ax)
        ax.set_ylabel(label)
    axes[1].set_yscale("log")
    if train_loss_max:
        axes[1].axhline(train_loss_max, color="gray", ls=":", lw=1.2, label="claims.train_loss_max")
    for ax in axes:
        relabel_legend(ax, fontsize=8)
    save(fig, pdf, png)
