"""Gradient estimators compared on the same episodes: per-episode estimates of a policy under every weighting,
in batches of an update's size, a reference gradient, and their statistics with bootstrap intervals paired by
batch.

    configs = estimators_of(config, learned=False)                  # every weighting pgjax has, on the run's config
    measured = measure_gradients(configs, configs[REFERENCE_WEIGHTING], params, key, reference_key,
                                 num_batches=128, batch_episodes=8, reference_batches=16)  # grads [W, K, E, P]
    result = paired_statistics(measured.grads, measured.reference.mean, measured.reference.variance)

The per-episode estimates are `pgjax.algo.gradients`'. Each batch of E episodes is weighted as an update of E
episodes is in training (a batch baseline, a batch normalisation and the reduction "step_mean" over that
batch), so a batch's mean estimate is exactly what an update of E episodes would step along, and the K batches
are independent updates. The statistics are NumPy's (float64), vectorised over the bootstrap's draws. A draw
resamples the K batch indices once (with replacement) and applies them to every estimator's batches: the
differences between estimators are the estimators', not the episodes'. Every statistic is a smooth function of
means over batches, so its percentile interval is centred on its point estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pgjax.results.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE

GRADIENTS_FILE = "gradients.json"
GRADIENTS_FIGURE = "gradients.png"
REFERENCE_WEIGHTING = "reward_to_go"  # unbiased for the run's loss (no baseline, gamma 1): the reference's
DRAW_BLOCK_NUMBERS = 2**22  # float64 numbers of the draws' means computed at once (32 MiB)
# Each estimator's statistics (`bootstrap_draws`), in the order of gradients.json and the table.
STATISTICS = ("episode_variance", "update_variance", "snr", "cosine", "squared_error", "squared_bias",
              "variance_ratio", "snr_ratio", "cosine_difference")


def resample_counts(num_batches: int, reps: int, seed: int = 0) -> np.ndarray:
    """The bootstrap's draws as counts: draw b takes batch k counts[b, k] times (K indices drawn with
    replacement, once per draw, for every estimator alike).

    Args:
      num_batches: K >= 1; reps: B >= 1 draws; seed: NumPy's generator seed.

    Returns:
      [B, K] float64 counts, each row summing to K.

    Raises:
      ValueError: K or B below 1.
    """
    if num_batches < 1 or reps < 1:
        raise ValueError(f"need num_batches >= 1 and reps >= 1, got {num_batches} and {reps}")
    indices = np.random.default_rng(seed).integers(0, num_batches, (reps, num_batches))
    counts = np.zeros((reps, num_batches))
    np.add.at(counts, (np.arange(reps)[:, None], indices), 1.0)
    return counts


def bootstrap_draws(grads: np.ndarray, reference: np.ndarray, reference_variance: float, counts: np.ndarray,
                    baseline: int = 0, *, population: bool = False) -> dict[str, np.ndarray]:
    """Each estimator's statistics on each resample of the batches (`counts`' rows; a row of ones: the sample).

    For estimator w with per-episode estimates g [K, E, P], batch means m_k = mean_e g_ke (an update's
    estimate), a draw's counts c_k (sum K), N = K * E and the draw's mean m = sum_k c_k m_k / K:
      episode_variance: (sum_k c_k sum_e |g_ke|^2 - N |m|^2) / (N - 1), the trace of the per-episode
        covariance (ddof 1; the episodes of a batch-normalised weighting are not independent, so for it this
        describes the per-episode terms and does not give the update's variance);
      update_variance: V = (sum_k c_k |m_k|^2 - K |m|^2) / (K - 1), tr Cov of an update's estimate, measured
        from the K independent batches (for independent episodes about episode_variance / E);
      snr: (|m|^2 - V / K) / V, the signal-to-noise ratio of an update's estimate: the squared norm of the
        estimator's expectation over V (|m|^2 less its own noise V / K; scale-free, unlike the variances);
      cosine: sum_k c_k cos(m_k, reference) / K, the mean cosine of an update's estimate with the reference
        (an update whose estimate is 0, e.g. batch_norm's on episodes of equal returns, counts 0; nan where the
        reference is 0);
      squared_error: sum_k c_k |m_k - reference|^2 / K - reference_variance, the mean squared error of an
        update's estimate against the reference's expectation (the reference's own variance taken out);
      squared_bias: |m - reference|^2 - V / K - reference_variance, the squared distance of the estimator's
        expectation from the reference's (unbiased for it: 0 for an unbiased estimator, up to noise that can
        take it below 0); it is squared_error - update_variance;
      variance_ratio: update_variance of w over that of `baseline` on the same draw (meaningful between
        weightings of one scale: a normalised weighting rescales the gradient);
      snr_ratio: snr of w over that of `baseline` on the same draw (scale-free; unbounded where the baseline's
        snr is near 0);
      cosine_difference: cosine of w minus that of `baseline` on the same draw (scale-free and bounded).
    `population` gives instead each statistic's value for the K batches taken as the whole population (what
    the bootstrap's draws estimate): the variances with ddof 0, snr |m|^2 / V and squared_bias |m - reference|^2
    - reference_variance; `paired_statistics` centres its intervals with it.

    Args:
      grads: [W, K, E, P] per-episode estimates of W estimators on the same K >= 2 batches of E >= 1 episodes.
      reference: [P] the reference gradient; reference_variance: its own variance (tr Cov of it; 0: none).
      counts: [B, K] resampling counts (`resample_counts`).
      baseline: the row of `grads` the ratios are against.
      population: the statistics of the K batches as the population (see above), not their estimates.

    Returns:
      {statistic: [B, W] float64} for each name of `STATISTICS`.

    Raises:
      ValueError: shapes that do not agree, K below 2, or `baseline` out of range.
    """
    grads, reference, counts = np.asarray(grads), np.asarray(reference, np.float64), np.asarray(counts, np.float64)
    if grads.ndim != 4 or grads.shape[1] < 2 or grads.shape[2] < 1:
        raise ValueError(f"grads must have shape [W, K, E, P] with K >= 2 batches, got {grads.shape}")
    num_weightings, num_batches, batch_episodes, num_params = grads.shape
    if reference.shape != (num_params,):
        raise ValueError(f"reference must have shape [P] = ({num_params},), got {reference.shape}")
    if counts.ndim != 2 or counts.shape[1] != num_batches:
        raise ValueError(f"counts must have shape [B, K] with K = {num_batches}, got {counts.shape}")
    if not 0 <= baseline < num_weightings:
        raise ValueError(f"baseline {baseline} out of range for {num_weightings} estimators")
    reps, num_episodes = counts.shape[0], num_batches * batch_episodes
    ddof = 0 if population else 1
    draws = {name: np.zeros((reps, num_weightings)) for name in STATISTICS[:-3]}
    reference_norm = np.linalg.norm(reference)
    block = max(1, DRAW_BLOCK_NUMBERS // num_params)  # draws at once: their means [block, P] stay small
    for w in range(num_weightings):  # one estimator's batches in float64 at a time
        g = grads[w].astype(np.float64)
        batch_means = g.mean(axis=1)  # [K, P]
        episode_squares = np.sum(g**2, axis=(1, 2))  # [K]
        mean_squares = np.sum(batch_means**2, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # an update of gradient 0 points nowhere: cosine 0
            cosines = np.where(mean_squares > 0, batch_means @ reference / (np.sqrt(mean_squares) * reference_norm),
                               0.0)
        errors = np.sum((batch_means - reference) ** 2, axis=1)
        for start in range(0, reps, block):
            c = counts[start:start + block]
            rows = slice(start, start + len(c))
            mean = c @ batch_means / num_batches  # [block, P]
            squared_norm = np.sum(mean**2, axis=1)
            draws["episode_variance"][rows, w] = ((c @ episode_squares - num_episodes * squared_norm)
                                                  / max(num_episodes - ddof, 1))
            variance = (c @ mean_squares - num_batches * squared_norm) / (num_batches - ddof)
            noise = 0.0 if population else variance / num_batches  # what the mean's own noise adds to |m|^2
            draws["update_variance"][rows, w] = variance
            with np.errstate(divide="ignore", invalid="ignore"):
                draws["snr"][rows, w] = (squared_norm - noise) / variance
            draws["cosine"][rows, w] = c @ cosines / num_batches
            draws["squared_error"][rows, w] = c @ errors / num_batches - reference_variance
            draws["squared_bias"][rows, w] = np.sum((mean - reference) ** 2, axis=1) - noise - reference_variance
    variance, snr = draws["update_variance"], draws["snr"]
    with np.errstate(divide="ignore", invalid="ignore"):
        draws["variance_ratio"] = variance / variance[:, [baseline]]
        draws["snr_ratio"] = snr / snr[:, [baseline]]
    draws["cosine_difference"] = draws["cosine"] - draws["cosine"][:, [baseline]]
    return draws


def paired_statistics(grads: np.ndarray, reference: np.ndarray, reference_variance: float = 0.0,
                      baseline: int = 0, *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                      confidence: float = CONFIDENCE) -> dict[str, dict[str, np.ndarray]]:
    """Each estimator's statistics (`bootstrap_draws`) on the K batches, with bootstrap intervals paired by
    batch: every draw resamples the batch indices once and applies them to every estimator's batches
    (`resample_counts`). The reference is held fixed (its own noise is in `reference_variance`, not in the
    intervals).

    The intervals are percentile intervals of the draws shifted by (point - population value), the
    bootstrap's own estimate of the bias the draws have against the point: the draws estimate the statistic of
    the batches taken as the population (`bootstrap_draws(population=True)`), which for a squared norm such as
    squared_bias lies above the debiased point by about V / K. The means (cosine, squared_error) need no shift.

    Args:
      grads: [W, K, E, P] per-episode estimates of W estimators on the same K >= 2 batches of E episodes.
      reference, reference_variance: the reference gradient [P] and its own variance.
      baseline: the estimator (row of `grads`) the variance ratios are against.
      reps: the bootstrap's draws B; seed: their seed; confidence: the intervals' level.

    Returns:
      {statistic: {"point": [W], "low": [W], "high": [W]}} float64, for each name of `STATISTICS` (nan where
      a draw's statistic is undefined).

    Raises:
      ValueError: as `bootstrap_draws`, or a confidence outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    num_batches = np.shape(grads)[1] if np.ndim(grads) == 4 else 0
    ones = np.ones((1, max(num_batches, 1)))
    point = bootstrap_draws(grads, reference, reference_variance, ones, baseline)
    population = bootstrap_draws(grads, reference, reference_variance, ones, baseline, population=True)
    draws = bootstrap_draws(grads, reference, reference_variance, resample_counts(num_batches, reps, seed),
                            baseline)
    tail = (1.0 - confidence) / 2.0
    result = {}
    for name in STATISTICS:
        shift = point[name][0] - population[name][0]
        low, high = np.quantile(draws[name], [tail, 1.0 - tail], axis=0) + shift
        result[name] = {"point": point[name][0], "low": low, "high": high}
    return result


class MeasuredGradients(NamedTuple):
    """What `measure_gradients` measured on one policy.

    Attributes:
      names: [W] the estimators, in the order given.
      grads: [W, K, E, P] float32 per-episode estimates, K batches of E episodes, the same episodes for all.
      reference: the `pgjax.algo.gradients.ReferenceGradient` of the reference weighting, on other episodes.
      returns: [K * E] float64, the undiscounted return of each episode.
    """

    names: list[str]
    grads: np.ndarray
    reference: Any
    returns: np.ndarray


def estimators_of(config: Any, learned: bool, own_weightings: tuple[str, ...] = ()) -> dict[str, Any]:
    """The estimators `python -m pgjax.gradients` compares for a run: `compared_weightings(config, learned=...)`,
    then each of `own_weightings` ("package.module:function" step weightings, named by it) on the run's config."""
    import dataclasses

    from pgjax.algo.config import Config
    from pgjax.algo.gradients import compared_weightings

    estimators = compared_weightings(config, learned=learned)
    for own in own_weightings:
        estimators[own] = Config(dataclasses.replace(config.static, weighting=own), config.hparams)
    return estimators


def measure_gradients(configs: dict[str, Any], reference_config: Any, params: Any, key: Any, reference_key: Any,
                      num_batches: int, batch_episodes: int, reference_batches: int, *, value_params: Any = None,
                      env: Any = None) -> MeasuredGradients:
    """Per-episode gradient estimates of one policy under every estimator of `configs` on the same K batches of E
    fresh episodes, and the reference gradient of `reference_config` on other episodes.

    Args:
      configs: {name: Config} the estimators (`estimators_of`, or any weightings of one environment and network:
        the first one's config collects the episodes); every config's weighting is imported if it names one.
      reference_config: the reference's estimator (e.g. `configs["reward_to_go"]`).
      params: the policy's parameters (one run's pytree, NumPy or JAX leaves).
      key: the episodes' JAX key (batch k's: `jax.random.split(key, K)[k]`); reference_key: the reference's.
      num_batches: K >= 2; batch_episodes: E >= 1, the episodes of one update (the run's episodes_per_update).
      reference_batches: the reference is the mean of reference_batches * K batches of E episodes.
      value_params: the learned value network's parameters (needed by the learned weightings among `configs`).
      env: as `make_episode_gradients` takes it (None: the configs').

    Returns:
      A `MeasuredGradients`.

    Raises:
      ValueError: a learned weighting without `value_params`, a recurrent network, K below 2, E or
        reference_batches below 1, or what importing one's own weighting raises (one line).
    """
    import jax

    from pgjax.algo.gradients import make_episode_gradients, reference_gradient

    if num_batches < 2 or batch_episodes < 1 or reference_batches < 1:
        raise ValueError(f"need num_batches >= 2, batch_episodes >= 1 and reference_batches >= 1, got "
                         f"{num_batches}, {batch_episodes} and {reference_batches}")
    params = jax.tree.map(jax.numpy.asarray, params)
    estimators = {name: make_episode_gradients(c, env, batch_episodes) for name, c in configs.items()}
    collect = jax.jit(jax.vmap(next(iter(estimators.values())).collect, in_axes=(None, 0)))
    trajs = collect(params, jax.random.split(key, num_batches))  # leaves [K, ...]: K batches of E episodes

    def every_estimate(params, trajs, value_params):  # one program for every weighting: one compile
        return jax.numpy.stack([jax.vmap(e.gradients, in_axes=(None, 0, None))(params, trajs, value_params)
                                for e in estimators.values()])

    grads = np.asarray(jax.jit(every_estimate)(params, trajs, value_params))
    reference_estimates = make_episode_gradients(reference_config, env, batch_episodes)
    reference = jax.jit(lambda p, k: reference_gradient(reference_estimates, p, k, reference_batches * num_batches,
                                                        value_params, batches_at_once=num_batches))(params,
                                                                                                    reference_key)
    returns = np.sum(np.asarray(trajs.reward, np.float64), axis=1, where=np.asarray(trajs.valid)).reshape(-1)
    return MeasuredGradients(list(configs), grads, jax.tree.map(np.asarray, reference), returns)


def plot_estimators(names: list[str], statistics: dict, path: str | Path, title: str) -> Path:
    """Three panels, one row per estimator with its paired interval: the variance of an update's estimate and
    its signal-to-noise ratio (log scales), and the mean cosine of an update's estimate with the reference.

    Args:
      names: [W] the estimators; statistics: `paired_statistics`' result.
      path: the image to write (its suffix gives the format); title: the figure's.

    Returns:
      The path written.
    """
    from matplotlib.figure import Figure

    from pgjax.results.plots import image_format_of
    from pgjax.running.run_folder.files import write_atomic

    path = Path(path)
    fig = Figure(figsize=(15, 0.4 * len(names) + 1.8), dpi=100)
    rows = np.arange(len(names))[::-1]
    panels = (("update_variance", "variance of an update's estimate (tr Cov)", "log"),
              ("snr", "signal-to-noise ratio of an update's estimate", "log"),
              ("cosine", "cosine of an update's estimate with the reference", "linear"))
    for i, (name, label, scale) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        point, low, high = (np.asarray(statistics[name][k], np.float64) for k in ("point", "low", "high"))
        if scale == "log":  # a debiased SNR or interval can reach below 0: the log axis shows what is above
            low = np.where(low > 0, low, np.nan)
        errors = np.stack([np.maximum(point - low, 0.0), np.maximum(high - point, 0.0)])
        ax.errorbar(point, rows, xerr=np.nan_to_num(errors), fmt="o", color=f"C{i}", capsize=3)
        ax.set_yticks(rows, names if i == 0 else [])
        ax.set_xscale(scale)
        ax.set_xlabel(label + ", 95% CI", fontsize=9)
        ax.grid(alpha=0.3, which="both", axis="x")
    fig.suptitle(title)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, bbox_inches="tight",
                                                     format=image_format_of(path)))
