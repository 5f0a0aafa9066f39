"""Gradient estimators compared on the same episodes: per-episode estimates of a run's policy under every
weighting, a reference gradient, and their statistics with percentile-bootstrap intervals paired by episode.

    names, grads, reference, returns = measure_gradients(config, params, key, reference_key, 1024, 16)
    draws = bootstrap_draws(grads, reference, resample_counts(1024, 2000, seed=0))  # [B, W] per statistic
    result = paired_statistics(grads, reference, baseline=0)                       # points and intervals

The per-episode estimates are `pgjax.algo.gradients`'; the statistics are NumPy's (float64), vectorised over the
bootstrap's draws. A draw resamples the N episode indices once (with replacement) and applies them to every
estimator's rows, so the differences between estimators are the estimators' and not the episodes'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pgjax.results.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE

GRADIENTS_FILE = "gradients.json"
GRADIENTS_FIGURE = "gradients.png"
REFERENCE_WEIGHTING = "reward_to_go"  # unbiased for the run's loss (no baseline, gamma 1): the reference's
DRAW_BLOCK_NUMBERS = 2**22  # float64 numbers of the draws' means computed at once (32 MiB)
STATISTICS = ("episode_variance", "cosine", "squared_error", "variance_difference", "variance_ratio")


def resample_counts(num_episodes: int, reps: int, seed: int = 0) -> np.ndarray:
    """The bootstrap's draws as counts: draw b takes episode e counts[b, e] times (N indices drawn with
    replacement, once per draw, for every estimator alike).

    Args:
      num_episodes: N >= 1; reps: B >= 1 draws; seed: NumPy's generator seed.

    Returns:
      [B, N] float64 counts, each row summing to N.

    Raises:
      ValueError: N or B below 1.
    """
    if num_episodes < 1 or reps < 1:
        raise ValueError(f"need num_episodes >= 1 and reps >= 1, got {num_episodes} and {reps}")
    indices = np.random.default_rng(seed).integers(0, num_episodes, (reps, num_episodes))
    counts = np.zeros((reps, num_episodes))
    np.add.at(counts, (np.arange(reps)[:, None], indices), 1.0)
    return counts


def bootstrap_draws(grads: np.ndarray, reference: np.ndarray, counts: np.ndarray, baseline: int = 0
                    ) -> dict[str, np.ndarray]:
    """Each estimator's statistics on each resample of the episodes (`counts`' rows; a row of ones: the sample).

    For estimator w with per-episode estimates g_we [N, P] and a draw's counts c_e (sum N), the draw's mean is
    m_w = sum_e c_e g_we / N and
      episode_variance: (sum_e c_e |g_we|^2 - N |m_w|^2) / (N - 1), the trace of the per-episode covariance
        (ddof 1, as `pgjax.algo.gradients.estimator_statistics`' episode_variance);
      cosine: cos(m_w, reference) (nan where either is 0); squared_error: |m_w - reference|^2;
      variance_difference, variance_ratio: episode_variance of w minus, over, that of `baseline` on the same draw.
    Weightings that normalise per batch (batch_mean, batch_norm) keep the full batch's statistics: their
    estimates are computed once on all N episodes, and a draw resamples the rows, not the weights.

    Args:
      grads: [W, N, P] per-episode estimates of W estimators on the same N >= 2 episodes.
      reference: [P] the reference gradient.
      counts: [B, N] resampling counts (`resample_counts`).
      baseline: the row of `grads` the differences and ratios are against.

    Returns:
      {statistic: [B, W] float64} for each name of `STATISTICS`.

    Raises:
      ValueError: shapes that do not agree, N below 2, or `baseline` out of range.
    """
    grads, reference, counts = np.asarray(grads), np.asarray(reference, np.float64), np.asarray(counts, np.float64)
    if grads.ndim != 3 or grads.shape[1] < 2:
        raise ValueError(f"grads must have shape [W, N, P] with N >= 2 episodes, got {grads.shape}")
    num_weightings, num_episodes, num_params = grads.shape
    if reference.shape != (num_params,):
        raise ValueError(f"reference must have shape [P] = ({num_params},), got {reference.shape}")
    if counts.ndim != 2 or counts.shape[1] != num_episodes:
        raise ValueError(f"counts must have shape [B, N] with N = {num_episodes}, got {counts.shape}")
    if not 0 <= baseline < num_weightings:
        raise ValueError(f"baseline {baseline} out of range for {num_weightings} estimators")
    reps = counts.shape[0]
    draws = {name: np.zeros((reps, num_weightings)) for name in STATISTICS[:3]}
    reference_norm = np.linalg.norm(reference)
    block = max(1, DRAW_BLOCK_NUMBERS // num_params)  # draws at once: their means [block, P] stay small
    for w in range(num_weightings):  # one estimator's [N, P] in float64 at a time
        g = grads[w].astype(np.float64)
        squared_rows = np.sum(g**2, axis=1)
        for start in range(0, reps, block):
            c = counts[start:start + block]
            mean = c @ g / num_episodes  # [block, P]
            squared_norm = np.sum(mean**2, axis=1)
            rows = slice(start, start + len(c))
            draws["episode_variance"][rows, w] = (np.maximum(c @ squared_rows - num_episodes * squared_norm, 0.0)
                                                  / (num_episodes - 1))
            with np.errstate(divide="ignore", invalid="ignore"):
                draws["cosine"][rows, w] = mean @ reference / (np.sqrt(squared_norm) * reference_norm)
            draws["squared_error"][rows, w] = np.sum((mean - reference) ** 2, axis=1)
    variance = draws["episode_variance"]
    draws["variance_difference"] = variance - variance[:, [baseline]]
    with np.errstate(divide="ignore", invalid="ignore"):
        draws["variance_ratio"] = variance / variance[:, [baseline]]
    return draws


def paired_statistics(grads: np.ndarray, reference: np.ndarray, baseline: int = 0, *,
                      reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE
                      ) -> dict[str, dict[str, np.ndarray]]:
    """Each estimator's statistics (`bootstrap_draws`) on the N episodes, with percentile-bootstrap intervals
    paired by episode: every draw resamples the episode indices once and applies them to every estimator's
    rows (`resample_counts`). Weightings that normalise per batch keep the full batch's statistics (their
    weights are not recomputed on a draw).

    The percentile interval of a statistic that is not a mean of the episodes (the squared error, and the
    cosine, of the mean estimate) is shifted by the resampling's own noise: a draw's mean is the sample's plus
    noise of trace Cov / N, so the squared error's draws lie above the sample's by about that much, and its
    interval need not contain the point estimate where that noise is large against the error itself.

    Args:
      grads: [W, N, P] per-episode estimates of W estimators on the same N >= 2 episodes.
      reference: [P] the reference gradient.
      baseline: the estimator (row of `grads`) the variance differences and ratios are against.
      reps: the bootstrap's draws B; seed: their seed; confidence: the intervals' level.

    Returns:
      {statistic: {"point": [W], "low": [W], "high": [W]}} float64, for each name of `STATISTICS` (nan where
      a draw's statistic is undefined in more than the interval's tails).

    Raises:
      ValueError: as `bootstrap_draws`, or a confidence outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    num_episodes = np.shape(grads)[1] if np.ndim(grads) == 3 else 0
    point = bootstrap_draws(grads, reference, np.ones((1, max(num_episodes, 1))), baseline)
    draws = bootstrap_draws(grads, reference, resample_counts(num_episodes, reps, seed), baseline)
    tail = (1.0 - confidence) / 2.0
    result = {}
    for name in STATISTICS:
        low, high = np.quantile(draws[name], [tail, 1.0 - tail], axis=0)
        result[name] = {"point": point[name][0], "low": low, "high": high}
    return result


def measure_gradients(config: Any, params: Any, key: Any, reference_key: Any, episodes: int,
                      reference_batches: int, *, env: Any = None
                      ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Per-episode gradient estimates of one policy under every weighting of `compared_weightings(config)` on
    the same `episodes` fresh episodes, and the reference gradient of `REFERENCE_WEIGHTING`.

    Args:
      config: the run's `Config` (a feed-forward policy, no learned baseline: its value network's parameters
        are not in a run folder).
      params: the policy's parameters (one run's pytree, NumPy or JAX leaves).
      key: the episodes' JAX key; reference_key: the reference's (its batches are other episodes).
      episodes: N >= 2 episodes, one batch; reference_batches: B >= 1 batches of N episodes for the reference.
      env: as `make_episode_gradients` takes it (None: the config's).

    Returns:
      (names [W], grads [W, N, P] float32, reference [P] float32, returns [N] float64 of the episodes), the
      names in `compared_weightings`' order, "run" first.

    Raises:
      ValueError: a learned baseline, a recurrent network, N below 2 or B below 1.
    """
    import jax

    from pgjax.algo.gradients import compared_weightings, make_episode_gradients, reference_gradient
    from pgjax.algo.weights import is_learned

    if is_learned(config.static.baseline):
        raise ValueError(f"baseline '{config.static.baseline}' weights by a learned value, whose parameters a run "
                         "folder does not keep")
    if episodes < 2 or reference_batches < 1:
        raise ValueError(f"need episodes >= 2 and reference_batches >= 1, got {episodes} and {reference_batches}")
    weightings = compared_weightings(config, learned=False)
    params = jax.tree.map(jax.numpy.asarray, params)
    estimators = {name: make_episode_gradients(c, env, episodes) for name, c in weightings.items()}
    traj = jax.jit(estimators["run"].collect)(params, key)
    grads = np.stack([np.asarray(jax.jit(e.gradients)(params, traj)) for e in estimators.values()])
    reference = jax.jit(lambda p, k: reference_gradient(estimators[REFERENCE_WEIGHTING], p, k, reference_batches))(
        params, reference_key)
    returns = np.asarray(traj.reward, np.float64).sum(axis=0, where=np.asarray(traj.valid))
    return list(weightings), grads, np.asarray(reference), returns


def plot_variances(names: list[str], variance: dict[str, np.ndarray], path: str | Path, title: str) -> Path:
    """The per-episode variance of each estimator with its interval, on a log scale.

    Args:
      names: [W] the estimators; variance: {"point", "low", "high": [W]} (`paired_statistics`' episode_variance).
      path: the image to write (its suffix gives the format); title: the figure's.

    Returns:
      The path written.
    """
    from matplotlib.figure import Figure

    from pgjax.results.plots import image_format_of
    from pgjax.running.run_folder.files import write_atomic

    path = Path(path)
    point, low, high = (np.asarray(variance[k], np.float64) for k in ("point", "low", "high"))
    fig = Figure(figsize=(8, 0.4 * len(names) + 1.5), dpi=100)
    ax = fig.add_subplot()
    rows = np.arange(len(names))[::-1]
    errors = np.stack([np.maximum(point - low, 0.0), np.maximum(high - point, 0.0)])
    ax.errorbar(point, rows, xerr=np.nan_to_num(errors), fmt="o", color="C0", capsize=3)
    ax.set_yticks(rows, names)
    ax.set_xscale("log")
    ax.set_xlabel("per-episode variance of the gradient estimate (trace of the covariance), 95% paired bootstrap CI")
    ax.grid(alpha=0.3, which="both", axis="x")
    ax.set_title(title)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, bbox_inches="tight",
                                                     format=image_format_of(path)))
