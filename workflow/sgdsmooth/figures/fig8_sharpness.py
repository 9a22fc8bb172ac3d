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
VARIANTS = {
    True: ("sharpness", "adaptive sharpness"),
    False: ("sharpness_plain", "plain sharpness"),
}


def log_scale(ax, frame, axis: str, column: str) -> None:
    """Put ``axis`` ("x" or "y") of ``ax`` on a log scale for ``column``, and say in the panel
    how many points a log axis cannot show (missing, zero or negative: a sharpness estimate
    can be ≤ 0, and δ is missing where b* is undetermined). With nothing positive to show
    the axis stays linear."""
    values = frame[column].to_numpy(dtype=float)
    shown = np.isfinite(values) & (values > 0)
    if shown.any():
        getattr(ax, f"set_{axis}scale")("log")
    left_out = int((~shown).sum())
    if left_out:
        ax.text(
            0.02,
            0.02 if axis == "x" else 0.10,
            f"{left_out} of {len(values)} without a positive {column}",
            transform=ax.transAxes,
            fontsize=7,
            color="0.3",
        )


def draw(sharpness: str, pdf: str, png: str, adaptive: bool = True) -> None:
    setup()
    s = tables.read_table(sharpness, "sharpness")
    s = s[s.optimizer == "sgd"].assign(log2_b=lambda d: np.log2(d.batch_size))
    lrs = sorted(s.lr.unique())
    col, label = VARIANTS[bool(adaptive)]
    other_col, other_label = VARIANTS[not adaptive]
    fig, axes = plt.subplots(1, 6, figsize=(28.8, 4.4), layout="constrained")
    kw = dict(estimator="mean", errorbar=("pi", 100), marker="o")
    for ax, (y, ylabel, title) in zip(
        axes[:2],
        [
            (col, label, f"(a) {label} vs $b$"),
            (other_col, other_label, f"(b) {other_label} vs $b$"),
        ],
    ):
        sns.lineplot(
            data=s, x="batch_size", y=y, hue="lr", hue_order=lrs, palette="flare", ax=ax, **kw
        )
        log2_batch_axis(ax)
        ax.set(ylabel=ylabel, title=title)
        log_scale(ax, s, "y", y)
        ax.legend(title=r"$\eta$", fontsize=8)
    sns.lineplot(data=s, x="lr", y=col, hue="batch_size", palette="viridis", ax=axes[2], **kw)
    axes[2].legend(title="$b$", fontsize=8)
    axes[2].set(
        xscale="log", xlabel=r"learning rate $\eta$", ylabel=label, title=r"(c) sharpness vs $\eta$"
    )
    log_scale(axes[2], s, "y", col)
    pairs = [
        ("delta", col, r"(d) sharpness vs $\delta$"),
        (col, "test_accuracy", "(e) accuracy vs sharpness"),
        ("delta", "test_accuracy", r"(f) accuracy vs $\delta$"),
    ]
    names = {"delta": r"$\delta$", col: label, "test_accuracy": "test accuracy"}
    for ax, (x, y, title) in zip(axes[3:], pairs):
        pts = ax.scatter(s[x], s[y], c=s.log2_b, cmap="viridis", s=22, edgecolors="none")
        ax.set(title=title, xlabel=names[x], ylabel=names[y])
        log_scale(ax, s, "x", x)
        if y == col:
            log_scale(ax, s, "y", y)
    for ax in axes:  # only decade labels on log axes: minor ones collide on short ranges
        ax.xaxis.set_minor_formatter(NullFormatter())
    cbar = fig.colorbar(pts, ax=axes[3:], fraction=0.02, pad=0.01, aspect=30)
    cbar.set_label(r"$\log_2 b$")
    fig.savefig(pdf)
    fig.savefig(png, dpi=150)
    plt.close(fig)
