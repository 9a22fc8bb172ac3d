"""Figure 8 (SGD): sharpness vs b, vs η, vs δ; accuracy vs sharpness; accuracy vs δ."""

import numpy as np
import seaborn as sns
from matplotlib.ticker import NullFormatter

from .. import tables
from . import log2_batch_axis, plt, setup


def draw(sharpness: str, pdf: str, png: str) -> None:
    setup()
    s = tables.read_table(sharpness, "sharpness")
    s = s[s.optimizer == "sgd"].assign(log2_b=lambda d: np.log2(d.batch_size))
    lrs = sorted(s.lr.unique())
    fig, axes = plt.subplots(1, 5, figsize=(24, 4.4), layout="constrained")
    kw = dict(estimator="mean", errorbar=("pi", 100), marker="o")
    sns.lineplot(data=s, x="batch_size", y="sharpness", hue="lr", hue_order=lrs, palette="flare", ax=axes[0], **kw)
    log2_batch_axis(axes[0])
    axes[0].set(yscale="log", ylabel="adaptive sharpness", title="(a) sharpness vs $b$")
    axes[0].legend(title=r"$\eta$", fontsize=8)
    sns.lineplot(data=s, x="lr", y="sharpness", hue="batch_size", palette="viridis", ax=axes[1], **kw)
    axes[1].legend(title="$b$", fontsize=8)
    axes[1].set(xscale="log", yscale="log", xlabel=r"learning rate $\eta$", ylabel="adaptive sharpness",
                title=r"(b) sharpness vs $\eta$")
    pairs = [("delta", "sharpness", r"(c) sharpness vs $\delta$"), ("sharpness", "test_accuracy", "(d) accuracy vs sharpness"),
             ("delta", "test_accuracy", r"(e) accuracy vs $\delta$")]
    for ax, (x, y, title) in zip(axes[2:], pairs):
        pts = ax.scatter(s[x], s[y], c=s.log2_b, cmap="viridis", s=22, edgecolors="none")
        ax.set(xscale="log", title=title, xlabel={"delta": r"$\delta$", "sharpness": "adaptive sharpness"}[x],
               ylabel={"sharpness": "adaptive sharpness", "test_accuracy": "test accuracy"}[y])
        if y == "sharpness":
            ax.set_yscale("log")
    for ax in axes:  # only decade labels on log axes: minor ones collide on short ranges
        ax.xaxis.set_minor_formatter(NullFormatter())
    cbar = fig.colorbar(pts, ax=axes[2:], fraction=0.02, pad=0.01, aspect=30)
    cbar.set_label(r"$\log_2 b$")
    fig.savefig(pdf)
    fig.savefig(png, dpi=150)
    plt.close(fig)
