"""One module per figure, each with ``draw(inputs..., pdf=, png=, **params)``.

Shared conventions live here: optimizer names and colours, log-2 batch axes, the
mean-line-with-min–max-band plot of the article, and saving to PDF (vector) and PNG.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..names import LABELS, OPTIMIZERS

__all__ = ["LABELS"]  # re-exported: every figure names the optimizers so
ORDER = list(OPTIMIZERS)
PALETTE = dict(zip(ORDER, sns.color_palette("colorblind", 3)))


def setup() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def save(fig: plt.Figure, pdf: str, png: str) -> None:
    fig.tight_layout()
    fig.savefig(pdf)
    fig.savefig(png, dpi=150)
    plt.close(fig)


def log2_batch_axis(ax: plt.Axes) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size $b$")


def mean_band(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, hue: str = "optimizer", **kw) -> None:
    """Mean line with the min–max band over seeds (seaborn's 0–100 percentile interval)."""
    present = [o for o in ORDER if o in set(df[hue])]
    sns.lineplot(
        data=df,
        x=x,
        y=y,
        hue=hue,
        hue_order=present,
        palette=PALETTE,
        estimator="mean",
        errorbar=("pi", 100),
        marker="o",
        ax=ax,
        **kw,
    )


def relabel_legend(ax: plt.Axes, **kw) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, [LABELS.get(lbl, lbl) for lbl in labels], **kw)


def main_study(df: pd.DataFrame, lr: float) -> pd.DataFrame:
    """Rows of the main study (Figs. 4–7): its learning rate, every optimizer."""
    return df[(df.lr - lr).abs() < 1e-12]
