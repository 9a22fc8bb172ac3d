"""Figure 8 (SGD): sharpness vs b (the primary variant, then the other), sharpness vs η and vs δ,
accuracy vs sharpness, accuracy vs δ.

Both variants are measured for every network (the authors' script leaves adaptive sharpness to
an off-by-default flag); ``adaptive`` (config ``sharpness.adaptive``) picks the primary one."""

import numpy as np
import seaborn as sns
from matplotlib.ticker import NullFormatter

from .. import tables
from . import log2_batch_axis, plt, setup

# column of the sharpness table and axis label of each variant
VARIANTS = {True: ("sharpness", "adaptive sharpness"), False: ("sharpness_plain", "plain sharpness")}


def draw(sharpness: str, pdf: str, png: str, adaptive: bool = True) -> None:
    setup()
    s = tables.read_table(sharpness, "sharpness")
    s = s[s.optimizer == "sgd"].assign(log2_b=lambda d: np.log2(d.batch_size))
    lrs = sorted(s.lr.unique())
    col, label = VARIANTS[bool(adaptive)]
    other_col, other_label = VARIANTS[not adaptive]
    fig, axes = plt.subplots(1, 6, figsize=(28.8, 4.4), layout="constrained")
    kw = dict(estimator="mean", errorbar=("pi", 100), marker="o")
    for ax, (y, ylabel, title) in zip(axes[:2], [(col, label, f"(a) {label} vs $b$"),
                                                 (other_col, other_label, f"(b) {other_label} vs $b$")]):
        sns.lineplot(data=s, x="batch_size", y=y, hue="lr", hue_order=lrs, palette="flare", ax=ax, **kw)
        log2_batch_axis(ax)
        ax.set(yscale="log", ylabel=ylabel, title=title)
        ax.legend(title=r"$\eta$", fontsize=8)
    sns.lineplot(data=s, x="lr", y=col, hue="batch_size", palette="viridis", ax=axes[2], **kw)
    axes[2].legend(title="$b$", fontsize=8)
    axes[2].set(xscale="log", yscale="log", xlabel=r"learning rate $\eta$", ylabel=label,
                title=r"(c) sharpness vs $\eta$")
    pairs = [("delta", col, r"(d) sharpness vs $\delta$"), (col, "test_accuracy", "(e) accuracy vs sharpness"),
             ("delta", "test_accuracy", r"(f) accuracy vs $\delta$")]
    names = {"delta": r"$\delta$", col: label, "test_accuracy": "test accuracy"}
    for ax, (x, y, title) in zip(axes[3:], pairs):
        pts = ax.scatter(s[x], s[y], c=s.log2_b, cmap="viridis", s=22, edgecolors="none")
        ax.set(xscale="log", title=title, xlabel=names[x], ylabel=names[y])
        if y == col:
            ax.set_yscale("log")
    for ax in axes:  # only decade labels on log axes: minor ones collide on short ranges
        ax.xaxis.set_minor_formatter(NullFormatter())
    cbar = fig.colorbar(pts, ax=axes[3:], fraction=0.02, pad=0.01, aspect=30)
    cbar.set_label(r"$\log_2 b$")
    fig.savefig(pdf)
    fig.savefig(png, dpi=150)
    plt.close(fig)
