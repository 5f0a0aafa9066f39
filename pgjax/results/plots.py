"""Learning curves: episode return against env steps, IQM (or mean) over runs with a 95% bootstrap band.

    plot_run("runs/DIR")                                 # -> runs/DIR/learning_curves.png
    plot_folders(["runs/A", "runs/B"], "ab.png")         # every group of every folder in one figure
    plot_folders(["runs/A"], "snr.png", metric="gradient_snr")   # another per-update metric (`METRICS`)

Each run's per-update returns are interpolated onto a grid of env steps shared by
the runs of a curve (up to the smallest final env-steps count among them), so
runs whose updates used different numbers of steps are compared at equal
experience. Drawn with matplotlib's Agg canvas: no display is needed, and the
pyplot backend of the caller is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from pgjax.results.stats import Statistic, bootstrap_interval, iqm
from pgjax.results.tables import settings_label
from pgjax.running.grid import varied_settings
from pgjax.running.run_folder import loading
from pgjax.running.run_folder.files import PLOT_FILE, write_atomic

STATISTICS = {"iqm": iqm, "mean": np.mean}
STATISTIC_NAMES = {"iqm": "IQM", "mean": "mean"}
# Bootstrap resamples per band point: enough for a drawn band (summary.json's intervals use
# `stats.BOOTSTRAP_RESAMPLES`); the cost grows with runs x points x resamples.
BAND_RESAMPLES = 500
# Curves drawn one by one, with a band and a legend entry; more curves than this: the first ones (the best,
# as the caller orders them) and the envelope of the others' curves (a legend of 1,000 entries says nothing).
TOP_CURVES = 8
# The per-update metrics a figure can draw: name (the curves' column, `pgjax.results.exports`) -> (the `Metrics`
# field, the y axis's label, whether the axis is logarithmic). The gradient statistics need `--gradient-stats`.
METRICS = {
    "return": ("episode_return", "episode return (mean of each update's episodes)", False),
    "length": ("episode_length", "episode length (mean of each update's episodes), in env steps", False),
    "loss": ("loss", "REINFORCE loss", False),
    "entropy": ("entropy", "policy entropy (nats)", False),
    "grad_norm": ("grad_norm", "gradient norm before clipping", True),
    "value_loss": ("value_loss", "value loss", True),
    "explained_variance": ("explained_variance", "explained variance of the value baseline", False),
    "gradient_variance": ("gradient_variance", "variance of the gradient estimate, tr Cov(g_e) / E", True),
    "gradient_snr": ("gradient_snr", "gradient signal-to-noise ratio, |g|^2 / variance", True),
    "gradient_cosine": ("gradient_cosine", "cosine between consecutive updates' gradients", False),
}


def curve_on_grid(env_steps: np.ndarray, returns: np.ndarray, points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate R runs' returns onto one env-steps grid.

    Args:
      env_steps: [R, U] cumulative env steps after each update of each run (increasing).
      returns: [R, U] mean episode return of each update of each run.
      points: grid points G.

    Returns:
      grid [G] env steps, from the largest first-update count to the smallest final
      count among the runs (no run is extrapolated; one point if those cross),
      and values [R, G], each run's returns linearly interpolated onto it.
    """
    env_steps = np.asarray(env_steps, np.float64)
    returns = np.asarray(returns, np.float64)
    if env_steps.ndim != 2 or env_steps.shape != returns.shape or env_steps.size == 0:
        raise ValueError(f"env_steps and returns must both be [runs, updates], got {env_steps.shape}, {returns.shape}")
    stop = env_steps[:, -1].min()
    start = min(env_steps[:, 0].max(), stop)
    grid = np.linspace(start, stop, points) if stop > start else np.array([stop])
    values = np.stack([np.interp(grid, x, y) for x, y in zip(env_steps, returns)])
    return grid, values


def curve_band(
    values: np.ndarray, statistic: Statistic = "iqm", *, reps: int = BAND_RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """values [R, G] -> (centre [G], low [G], high [G]): statistic over runs, 95% percentile-bootstrap band.

    The bootstrap resamples whole runs (`pgjax.results.stats.bootstrap_interval`, so the
    band lies within the runs' range at every point). With one run the band is (None, None).
    """
    fn = STATISTICS[statistic]
    centre = fn(values, axis=0)
    if values.shape[0] < 2:
        return centre, None, None
    low, high = bootstrap_interval(values, fn, axis=0, reps=reps, seed=seed)
    return centre, low, high


def plot_curves(
    curves: Sequence[dict],
    path: str | Path,
    *,
    threshold: float | None = None,
    title: str = "",
    statistic: Statistic = "iqm",
    points: int = 100,
    reps: int = BAND_RESAMPLES,
    seed: int = 0,
    top: int = TOP_CURVES,
    metric: str = "return",
) -> Path:
    """Draw learning curves into a PNG (800 x 500 pixels at 100 dpi before tight cropping).

    With more than `top` curves the first `top` are drawn (the best first, as the
    caller orders them) and the others as one grey envelope: at each env-steps
    point, the lowest to the highest of their curves (without bands).

    Args:
      curves: dicts with "label" (str), "env_steps" [R, U] cumulative env steps after
        each update of each run and "returns" [R, U] mean episode return of each
        update of each run; R and U may differ between curves.
      path: the image to write (its folder must exist), in the format its suffix names (.png, .pdf, .svg, ...);
        written atomically (`write_atomic`).
      threshold: return at which the environment counts as solved, drawn dashed; None for none.
      title: figure title.
      statistic: "iqm" (interquartile mean over runs, rliable's recommendation) or "mean".
      points, reps, seed: grid points per curve; bootstrap resamples and seed of the bands.
      top: most curves drawn one by one.
      metric: what the curves' "returns" hold (`METRICS`): the y axis's label and scale.

    Returns:
      The path written.

    Raises:
      ValueError: no curves; an unknown statistic; a suffix matplotlib cannot write;
        the write failed (one line naming the file; no temporary file is left).
    """
    if not curves:
        raise ValueError("no curves to plot")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    check_metric(metric)
    path = Path(path)
    image_format = image_format_of(path)
    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.add_subplot()
    shown, others = curves[:top], curves[top:]
    colors = colormaps["tab10" if len(shown) <= 10 else "tab20"].colors
    if others:
        _draw_envelope(ax, others, statistic, points, f"the other {len(others):,} groups: range of their curves")
    for k, curve in enumerate(shown):
        grid, values = curve_on_grid(curve["env_steps"], curve["returns"], points)
        centre, low, high = curve_band(values, statistic, reps=reps, seed=seed)
        color = colors[k % len(colors)]
        runs = values.shape[0]
        label = f"{curve['label']} ({runs} run{'s' if runs != 1 else ''})"
        ax.plot(grid, centre, color=color, lw=1.8, label=label, marker="o" if grid.size == 1 else None)
        if low is not None:
            ax.fill_between(grid, low, high, color=color, alpha=0.25, lw=0)
    if threshold is not None:
        ax.axhline(threshold, color="0.35", ls="--", lw=1.2, label=f"solve threshold ({threshold:g})")
    ax.set_xlabel("environment steps per run")
    _, ylabel, logarithmic = METRICS[metric]
    ax.set_ylabel(ylabel)
    if logarithmic:
        ax.set_yscale("log")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(alpha=0.3)
    ax.set_title(title)
    legend_title = f"{STATISTIC_NAMES[statistic]} over runs, shaded: 95% bootstrap CI"
    if max(len(c["label"]) for c in shown) > 45:  # long labels go below the axes, not over the curves
        ax.legend(title=legend_title, loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize="small",
                  title_fontsize="small")
    elif len(shown) + bool(others) <= 6:
        ax.legend(title=legend_title, loc="best", fontsize="small", title_fontsize="small")
    else:
        ax.legend(title=legend_title, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                  title_fontsize="small")
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, bbox_inches="tight", format=image_format))


def _draw_envelope(ax: Any, curves: Sequence[dict], statistic: Statistic, points: int, label: str) -> None:
    """The lowest to the highest of `curves`' statistic curves at each point of one env-steps grid (a curve
    counts where it has data: halving's shorter curves end early), in grey."""
    fn = STATISTICS[statistic]
    centres = [curve_on_grid(c["env_steps"], c["returns"], points) for c in curves]
    centres = [(grid, fn(values, axis=0)) for grid, values in centres]
    stop = max(grid[-1] for grid, _ in centres)
    grid = np.linspace(min(g[0] for g, _ in centres), stop, 2 * points)
    stacked = np.stack([np.where((grid >= g[0]) & (grid <= g[-1]), np.interp(grid, g, c), np.nan) for g, c in centres])
    covered = ~np.isnan(stacked).all(axis=0)
    low = np.where(covered, np.nanmin(np.where(np.isnan(stacked), np.inf, stacked), axis=0), np.nan)
    high = np.where(covered, np.nanmax(np.where(np.isnan(stacked), -np.inf, stacked), axis=0), np.nan)
    ax.fill_between(grid, low, high, color="0.6", alpha=0.35, lw=0, label=label)


def image_format_of(path: Path) -> str:
    """The image format a path's suffix names ("png" for .png). ValueError: a suffix matplotlib cannot write."""
    supported = Figure().canvas.get_supported_filetypes()
    image_format = path.suffix[1:].lower()
    if image_format not in supported:
        raise ValueError(f"cannot write a figure to {path}: give a file ending in .png (or "
                         f"{', '.join('.' + name for name in sorted(supported) if name != 'png')})")
    return image_format


def figure_path(out: str | Path, default_name: str = PLOT_FILE) -> Path:
    """The file a figure asked for with `--out OUT` goes to, and which the command names.

    An existing folder gets `default_name` inside it; any other name is the file
    itself, in the format its suffix names (nothing is added to it).

    Raises:
      ValueError: one line: `out` has no suffix, or one that is no image format matplotlib writes.
    """
    out = Path(out)
    if out.is_dir():
        return out / default_name
    if out.suffix == "":
        raise ValueError(f"--out {out} names no image format: give the figure's file, e.g. --out {out}.png "
                         f"(or .pdf, .svg), or a folder that exists")
    image_format_of(out)
    return out


def check_metric(metric: str) -> None:
    """Raise ValueError (one line listing them) for a metric that is not one of `METRICS`."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")


def curves_of_summary(summary: dict, group_metrics: Sequence[dict], run_dir: str | Path,
                      metric: str = "return") -> list[dict]:
    """One unlabelled curve per group of a run: {"run_dir", "hyperparameters", "env_steps", "returns" (the
    metric's values), "rank" (its place in the run's ranking, best first; an unranked group's after every
    ranked one)}.

    Args:
      summary: the run's summary.json dict (written or not yet); group_metrics: per group,
        its metrics (name -> [R, U] arrays: "env_steps" and the metric's field); run_dir: the folder.
      metric: one of `METRICS`. Leading updates where no run has a value (the cosine's first) are left out.

    Raises:
      ValueError: an unknown metric, or one the folder's metrics do not hold (naming the folder; the gradient
        statistics: train with --gradient-stats).
    """
    check_metric(metric)
    field = METRICS[metric][0]
    ranking = (summary.get("ranking") or {}).get("groups") if isinstance(summary.get("ranking"), dict) else None
    place = {index: k for k, index in enumerate(ranking)} if isinstance(ranking, list) else {}
    curves = []
    for g, (group, metrics) in enumerate(zip(summary["groups"], group_metrics)):
        if field not in metrics:
            hint = ": train with --gradient-stats" if field.startswith("gradient_") else ""
            raise ValueError(f"{run_dir} holds no per-update {metric}{hint}")
        env_steps, values = np.asarray(metrics["env_steps"]), np.asarray(metrics[field])
        first = int(np.argmax(~np.isnan(values).all(axis=0))) if values.size else 0
        curves.append({"run_dir": Path(run_dir), "hyperparameters": group["hyperparameters"],
                       "env_steps": env_steps[:, first:], "returns": values[:, first:],
                       "rank": place.get(group["index"], len(place) + g)})
    return curves


def best_first(curves: list[dict]) -> list[dict]:
    """Curves by their place in their folder's ranking (summary.json's "ranking"; unranked groups after, in
    order), the folders' best first in turn: what `plot_curves` draws one by one when there are many."""
    return sorted(curves, key=lambda c: c["rank"])  # stable: equal places keep the folders' order


def label_curves(curves: list[dict], several: bool) -> list[dict]:
    """Label each curve by what tells it apart (see `group_curves`); returns `curves`."""
    names = varied_settings([c["hyperparameters"] for c in curves])  # over every folder's groups
    for curve in curves:
        settings = settings_label(curve["hyperparameters"], names)
        folder = curve["run_dir"].name if several else ""
        curve["label"] = ": ".join(part for part in (folder, settings) if part) or "all runs"
    return curves


def plot_summary(run_dir: str | Path, summary: dict, group_metrics: Sequence[Any], path: str | Path | None = None,
                 *, statistic: Statistic = "iqm") -> Path:
    """The learning curves of a run from its results in memory: what `pgjax.train` draws before summary.json.

    Args:
      run_dir: the run folder; summary: its summary dict; group_metrics: per group its
        `Metrics` or metrics dict, leaves [R, U, ...]; path: default `<run_dir>/learning_curves.png`.

    Returns:
      The path written.

    Raises:
      ValueError: as `plot_curves`.
    """
    as_dicts = [m if isinstance(m, dict) else {"env_steps": m.env_steps, "episode_return": m.episode_return}
                for m in group_metrics]
    curves = best_first(label_curves(curves_of_summary(summary, as_dicts, run_dir), several=False))
    return plot_curves(curves, Path(run_dir) / PLOT_FILE if path is None else path,
                       threshold=summary.get("solve_threshold"), title=f"{summary['env']}: {Path(run_dir).name}",
                       statistic=statistic)


def group_curves(run_dirs: Sequence[str | Path], metric: str = "return") -> tuple[list[dict], dict]:
    """One curve per group of every run folder, labelled by what tells it apart (of `metric`, `METRICS`).

    Returns:
      (curves for `plot_curves`, `best_first`, each also with "hyperparameters" and "run_dir";
      {env id: solve threshold}, one entry: every folder's environment). A label
      holds the folder name when there are several folders, and the settings
      that differ between the groups (of every folder); a lone curve is labelled "all runs".

    Raises:
      ValueError: no folder; a folder that holds no finished run
        (`pgjax.running.run_folder.loading.check_run_dir`) or a damaged one (summary.json or
        metrics.npz: the message names the file); folders of different
        environments, whose returns do not compare (the message names them); a metric unknown or not
        in a folder (`curves_of_summary`).
    """
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("give at least one run folder")
    summaries = [loading.load_summary(run_dir) for run_dir in run_dirs]
    envs = {summary["env"]: run_dir for run_dir, summary in zip(run_dirs, summaries)}
    if len(envs) > 1:
        listed = ", ".join(f"{env} ({run_dir})" for env, run_dir in envs.items())
        raise ValueError(f"cannot overlay runs of different environments: {listed}; plot each environment apart")
    curves, thresholds = [], {}
    for run_dir, summary in zip(run_dirs, summaries):
        thresholds[summary["env"]] = summary.get("solve_threshold")
        group_metrics = loading.load_run_metrics(run_dir, summary)
        curves.extend(curves_of_summary(summary, group_metrics, run_dir, metric))
    return best_first(label_curves(curves, several=len(run_dirs) > 1)), thresholds


def plot_folders(run_dirs: Sequence[str | Path], path: str | Path, *, statistic: Statistic = "iqm",
                 metric: str = "return") -> Path:
    """Overlay every group of every run folder (all of one environment) in one figure; returns the PNG written.

    `metric`: what the curves show (`METRICS`; the solve threshold is drawn with the return only).

    Raises:
      ValueError: as `group_curves`.
    """
    curves, thresholds = group_curves(run_dirs, metric)
    ((env, threshold),) = thresholds.items()
    where = Path(run_dirs[0]).name if len(run_dirs) == 1 else f"{len(run_dirs)} run folders"
    return plot_curves(curves, path, threshold=threshold if metric == "return" else None, title=f"{env}: {where}",
                       statistic=statistic, metric=metric)


def plot_run(run_dir: str | Path, path: str | Path | None = None, *, statistic: Statistic = "iqm") -> Path:
    """Learning curves of every group of a run folder; writes `<run_dir>/learning_curves.png` by default.

    Raises:
      ValueError: as `plot_folders`.
    """
    return plot_folders([run_dir], Path(run_dir) / PLOT_FILE if path is None else path, statistic=statistic)
