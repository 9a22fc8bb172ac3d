"""Figure 3: Rastrigin's function and its Gaussian smoothings f̂_δ."""

import numpy as np

from .. import theory
from . import plt, save, setup


def draw(pdf: str, png: str, deltas=(0.2, 0.4, 0.7, 1.0, 3.0)) -> None:
    setup()
    x = np.linspace(-5, 5, 1001)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, theory.rastrigin(x), color="black", lw=1.2, label="$f$ (Rastrigin)")
    for d, color in zip(deltas, plt.cm.viridis(np.linspace(0.1, 0.9, len(deltas)))):
        ax.plot(
            x,
            theory.rastrigin_smoothed(x, d),
            color=color,
            lw=1.5,
            label=rf"$\hat f_\delta$, $\delta={d:g}$",
        )
    ax.set_xlabel("$x$")
    ax.set_ylabel("value")
    ax.legend(fontsize=8)
    save(fig, pdf, png)
