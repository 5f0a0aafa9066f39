"""Comparison figures in rliable's style: performance profiles and probabilities of improvement.

    plot_performance_profiles(profiles, tau, "profiles.png")    # fraction of runs above tau, with bands
    plot_improvement(comparison, "improvement.png")             # P(group > baseline), one interval per group

Drawn with matplotlib's Agg canvas (no display; the caller's pyplot backend is left alone),
colours and sizes as `pgjax.results.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from pgjax.running.run_folder.files import write_atomic

PROFILE_FILE = "performance_profiles.png"
IMPROVEMENT_FILE = "probability_of_improvement.png"


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` atomically as a PNG (`write_atomic`); returns the path. ValueError: the write failed."""
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png"))


def _colors(count: int) -> Sequence:
    return colormaps["tab10" if count <= 10 else "tab20"].colors


def plot_performance_profiles(
    profiles: Sequence[dict], tau: np.ndarray, path: str | Path, *, title: str = "", xlabel: str = "final return (tau)"
) -> Path:
    """Fraction of runs whose score exceeds tau against tau, one line per group, its 95% band shaded.

    Args:
      profiles: dicts with "label" and `pgjax.results.comparison.performance_profile`'s
        "fraction", "low", "high" ([T] each; low/high None for no band).
      tau: [T] thresholds.
      path: the PNG to write (its folder must exist).

    Returns:
      The path written.
    """
    if not profiles:
        raise ValueError("no performance profile to plot")
    path = Path(path)
    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.add_subplot()
    colors = _colors(len(profiles))
    for k, profile in enumerate(profiles):
        color = colors[k % len(colors)]
        ax.plot(tau, profile["fraction"], color=color, lw=1.8, label=profile["label"])
        if profile.get("low") is not None:
            ax.fill_between(tau, profile["low"], profile["high"], color=color, alpha=0.2, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    legend = dict(title="shaded: 95% bootstrap CI", fontsize="small", title_fontsize="small")
    if len(profiles) <= 6 and max(len(p["label"]) for p in profiles) <= 45:
        ax.legend(loc="best", **legend)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), **legend)
    return save_figure(fig, path)


def plot_improvement(comparison: dict, path: str | Path, *, title: str = "") -> Path:
    """P(group > baseline) of every group with its 95% interval, as horizontal bars (rliable's figure).

    Args:
      comparison: `pgjax.results.comparison.compare_groups`'s dict.
      path: the PNG to write (its folder must exist).

    Returns:
      The path written.
    """
    rows = [(entry["label"] or str(entry["group"]), entry["final_return"]["probability_of_improvement"])
            for entry in comparison["groups"]]
    rows = [(label, found) for label, found in rows if found["probability"] is not None]
    if not rows:
        raise ValueError("no probability of improvement to plot")
    path = Path(path)
    fig = Figure(figsize=(7, 1.2 + 0.45 * len(rows)), dpi=100)
    ax = fig.add_subplot()
    colors = _colors(len(rows))
    for k, (label, found) in enumerate(rows):
        y = len(rows) - 1 - k  # first group on top
        color = colors[k % len(colors)]
        if found["ci95"] is not None:
            low, high = found["ci95"]
            ax.barh(y, high - low, left=low, height=0.6, color=color, alpha=0.75)
        # The point stays visible at 0 or 1 and inside a zero-width interval.
        ax.plot([found["probability"]], [y], marker="D", markersize=6, color="black", clip_on=False)
    ax.axvline(0.5, color="0.35", ls="--", lw=1.0)
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)])
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    baseline = comparison.get("baseline_label") or str(comparison["baseline"])
    ax.set_xlabel(f"P(group > baseline): baseline {baseline}\nbar: 95% bootstrap CI; diamond: point estimate")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(title)
    return save_figure(fig, path)
