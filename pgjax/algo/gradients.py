"""The policy-gradient estimator as an object of study: per-episode gradient estimates, their statistics, and
the weightings to compare on the same episodes.

    estimates = make_episode_gradients(config)                     # reference pieces of `config`'s update
    traj = estimates.collect(params, key)                          # E fresh episodes (last observations kept)
    grads = estimates.gradients(params, traj, value_params)        # [E, P]: mean over E = the update's gradient
    reference = reference_gradient(estimates, params, other_key, 64).mean  # [P]: 64 fresh batches' mean
    stats = estimator_statistics(grads, reference)                 # norm, variance, SNR, cosine, squared error
    for name, other in compared_weightings(config).items():        # the same episodes, another weighting
        grads = make_episode_gradients(other).gradients(params, traj, value_params)

For one run the update's loss (`pgjax.algo.loss`) is a sum over episodes,

    L(theta) = sum_e L_e(theta),   L_e(theta) = sum_t c_t,e * ( -log pi_theta(a_t,e | s_t,e) * w_t,e - beta * H_t,e ),

so its gradient is the mean over e of g_e = E * grad L_e: the per-episode estimates. The weights w and
coefficients c are those training computes (`pgjax.algo.weights`, over the whole batch: a batch baseline or
normalisation couples the episodes, so the g_e of one batch are not independent); they are functions of the
rewards and of the value network's parameters only, never of theta, so they are constants of the gradient,
exactly as in training. The gradients are of the loss, which training descends: -g_e estimates the ascent
direction of the expected return (for the unbiased weightings, and up to the entropy term).

Everything here is a pure function of arrays (one run; vmappable), on the plain reference path
(`FastPaths.reference()`), which computes the same function as the fast paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from pgjax.algo.config import Config, FastPaths, Hyperparams
from pgjax.algo.envs import EnvSpec, env_for
from pgjax.algo.imports import own_functions
from pgjax.algo.loss import StepLoss, reinforce_loss
from pgjax.algo.pieces import choose_collect, choose_pieces
from pgjax.algo.policy import Distribution, make_apply_fn, recurrence
from pgjax.algo.rollout import ApplyFn, Trajectory
from pgjax.algo.weights import StepWeights, is_learned

REFERENCE = FastPaths.reference()


class EpisodeGradients(NamedTuple):
    """What `make_episode_gradients` builds for one configuration (each function is one run's, vmappable).

    Attributes:
      gradients: `(params, traj, value_params=None, hparams=None) -> [E, P]` float32, the per-episode
        estimates g_e = E * grad L_e of the module's docstring, flattened as `flatten_gradient` does (P: the
        number of policy parameters); their mean over E is the gradient of the update's loss on `traj`.
        `value_params`: the value network's parameters (needed for a learned baseline, else ignored);
        `hparams`: None takes the config's. Raises ValueError (when traced) for a learned baseline without
        `value_params`.
      collect: `(params, key) -> Trajectory` of E fresh episodes with the policy (the reference rollout,
        `Trajectory.last_obs` kept, so that a learned baseline can bootstrap a truncated episode).
      spec: the environment.
    """

    gradients: Callable[..., jax.Array]
    collect: Callable[[Any, jax.Array], Trajectory]
    spec: EnvSpec


def flatten_gradient(grads: Any) -> jax.Array:
    """A gradient (a pytree shaped like the policy's parameters) as one vector [P], in `ravel_pytree`'s order
    (the order of the per-episode estimates' columns)."""
    return ravel_pytree(grads)[0]


def make_episode_gradients(
    config: Config,
    env: Any = None,
    num_episodes: int | None = None,
    *,
    weighting: Callable | None = None,
    step_loss: Callable | None = None,
) -> EpisodeGradients:
    """Build (compile nothing yet) the per-episode gradient estimates of `config`'s update.

    Args:
      config: the weighting (returns, baseline, advantage, reduction, a weighting or step loss of one's own)
        and the hyperparameters (gamma, baseline_constant, gae_lambda, entropy_coef, value_scale).
      env: the environment, as `pgjax.algo.trainer.make_trainer` takes it (None: `config.static.env`).
      num_episodes: E of `collect` (None: `config.static.episodes_per_update`); `gradients` takes any E >= 1.
      weighting, step_loss: one's own, as `make_trainer` takes them (None: the config's, if any).

    Returns:
      An `EpisodeGradients`.

    Raises:
      ValueError: a recurrent policy (its per-episode gradients are not computed here), or what `make_trainer`
        raises for an environment, network or function pgjax cannot serve (one line).
    """
    static = config.static
    spec = env_for(static, env)
    weighting, step_loss = own_functions(static, weighting, step_loss)
    pieces = choose_pieces(spec, config, REFERENCE, weighting=weighting, step_loss=step_loss)
    if recurrence(pieces.policy) is not None:
        raise ValueError(f"per-episode gradients of the recurrent network '{static.network}' are not computed yet")
    apply_fn = make_apply_fn(pieces.policy)
    learned = weighting is None and is_learned(static.baseline)
    default_hparams = config.hparams.as_arrays()
    collect = choose_collect(spec, apply_fn, num_episodes or static.episodes_per_update, pieces.dist, REFERENCE,
                             keep_last_obs=True)

    def gradients(params: Any, traj: Trajectory, value_params: Any = None, hparams: Hyperparams | None = None
                  ) -> jax.Array:
        if learned and value_params is None:
            raise ValueError(f"baseline '{static.baseline}' weights by a learned value: give its value_params")
        hparams = default_hparams if hparams is None else hparams
        weights = pieces.weighting.weights(value_params, traj, hparams)
        return episode_gradients(apply_fn, pieces.dist, params, traj, weights, hparams.entropy_coef, step_loss)

    return EpisodeGradients(gradients, collect, spec)


def episode_gradients(apply_fn: ApplyFn, dist: Distribution, params: Any, traj: Trajectory, weights: StepWeights,
                      entropy_coef: jax.Array | float, step_loss: StepLoss | None = None) -> jax.Array:
    """The per-episode estimates g_e = E * grad L_e of the module's docstring, from weights already computed
    (what `EpisodeGradients.gradients` computes once it has the weights; what an update that has its weights
    would call). One run; a feed-forward policy.

    Args:
      apply_fn: the policy network, `(params, obs [..., *obs_shape]) -> out [..., K]` (`pgjax.algo.policy`).
      dist: the action distribution `out` parameterises.
      params: the policy's parameters (P numbers in all).
      traj: E episodes (`Trajectory`, [T, E] time-major).
      weights: their `StepWeights` (w and c [T, E], over the whole batch), held constant.
      entropy_coef: beta of the loss; step_loss: one's own per-step loss (None: REINFORCE's).

    Returns:
      [E, P] float32, columns in `flatten_gradient`'s order; the mean over E is the gradient of
      `pgjax.algo.loss.reinforce_loss` (the update's loss) on `traj`.
    """

    def episode_loss(params, obs, action, weight, coef, valid):
        return reinforce_loss(apply_fn, params, obs, action, weight, coef, valid, entropy_coef, dist=dist,
                              step_loss=step_loss)[0]

    grads = jax.vmap(jax.grad(episode_loss), in_axes=(None, 1, 1, 1, 1, 1))(
        params, traj.obs, traj.action, weights.weight, weights.coef, traj.valid)
    return traj.valid.shape[1] * jax.vmap(flatten_gradient)(grads)


class ReferenceGradient(NamedTuple):
    """A large-batch gradient (`reference_gradient`) and its own noise.

    Attributes:
      mean: [P] float32, the mean of B batches' estimates (each batch's mean over its E episodes).
      variance: [] float32, tr Cov(batch estimate) / B, the variance of `mean` itself (ddof 1; nan for B = 1):
        what the reference's own noise adds to a squared distance from it.
    """

    mean: jax.Array
    variance: jax.Array


def reference_gradient(estimates: EpisodeGradients, params: Any, key: jax.Array, num_batches: int,
                       value_params: Any = None, hparams: Hyperparams | None = None, batches_at_once: int = 1
                       ) -> ReferenceGradient:
    """A large-batch gradient: the mean of `num_batches` batches' estimates, each of `estimates.collect`'s E
    fresh episodes, `batches_at_once` batches at a time (`lax.map` over vmapped groups), so that memory holds
    that many batches' [E, P] estimates only.

    Args:
      estimates: what `make_episode_gradients` built (its weighting and E).
      params: the policy's parameters; key: batch b's key is `jax.random.split(key, num_batches)[b]`.
      num_batches: B >= 1; the gradient is of B * E episodes.
      value_params, hparams: as `EpisodeGradients.gradients` takes them.
      batches_at_once: batches vmapped together (>= 1; the same numbers for any value, up to float rounding).

    Returns:
      A `ReferenceGradient`. Weights that a batch statistic normalises (batch_mean, batch_norm, and the
      reduction step_mean) are normalised over each batch of E, as training does on batches of E: the mean is
      the expectation of an update's estimate of E episodes, not of one of B * E.

    Raises:
      ValueError: num_batches or batches_at_once below 1.
    """
    if num_batches < 1 or batches_at_once < 1:
        raise ValueError(f"num_batches and batches_at_once must be >= 1, got {num_batches} and {batches_at_once}")

    def batch_mean(batch_key):
        traj = estimates.collect(params, batch_key)
        return estimates.gradients(params, traj, value_params, hparams).mean(axis=0)

    means = jax.lax.map(batch_mean, jax.random.split(key, num_batches), batch_size=min(batches_at_once, num_batches))
    mean = means.mean(axis=0)
    variance = jnp.sum((means - mean) ** 2) / (num_batches - 1) / num_batches if num_batches > 1 else jnp.nan
    return ReferenceGradient(mean, jnp.float32(variance))


class EstimatorStatistics(NamedTuple):
    """Statistics of one batch's per-episode gradient estimates g_e [E, P] (units: the loss's gradient's,
    per parameter; variances in their square). `mean` is g = mean_e g_e, the batch's estimate.

    Attributes:
      mean_norm: [] |g|, the norm of the batch's estimate.
      variance: [] tr Cov(g_e) / E, the variance of the batch's estimate (summed over parameters).
      episode_variance: [] tr Cov(g_e) = sum_p sum_e (g_ep - g_p)^2 / (E - 1), one episode's (ddof 1).
      snr: [] |g|^2 / variance, the signal-to-noise ratio (inf where the variance is 0).
      cosine: [] cos(g, reference), or None without a reference (nan where either is 0).
      squared_error: [] |g - reference|^2, or None without a reference.
    """

    mean_norm: jax.Array
    variance: jax.Array
    episode_variance: jax.Array
    snr: jax.Array
    cosine: jax.Array | None = None
    squared_error: jax.Array | None = None


def estimator_statistics(grads: jax.Array, reference: jax.Array | None = None) -> EstimatorStatistics:
    """The statistics of per-episode gradient estimates (`EstimatorStatistics`), jittable.

    Args:
      grads: [E, P] per-episode estimates (`EpisodeGradients.gradients`), E >= 2.
      reference: [P] a reference gradient (e.g. of a much larger batch), or None.

    Returns:
      An `EstimatorStatistics` of float32 scalars (cosine and squared_error None without a reference).

    Raises:
      ValueError: grads not of shape [E, P] with E >= 2, or a reference not of shape [P].
    """
    if jnp.ndim(grads) != 2 or jnp.shape(grads)[0] < 2:
        raise ValueError(f"grads must have shape [E, P] with E >= 2 episodes, got {jnp.shape(grads)}")
    num_episodes, num_params = jnp.shape(grads)
    if reference is not None and jnp.shape(reference) != (num_params,):
        raise ValueError(f"reference must have shape [P] = ({num_params},), got {jnp.shape(reference)}")
    grads = jnp.asarray(grads, jnp.float32)
    mean = grads.mean(axis=0)
    episode_variance = jnp.sum((grads - mean) ** 2) / (num_episodes - 1)
    variance = episode_variance / num_episodes
    squared_norm = jnp.sum(mean**2)
    stats = EstimatorStatistics(jnp.sqrt(squared_norm), variance, episode_variance, squared_norm / variance)
    if reference is None:
        return stats
    reference = jnp.asarray(reference, jnp.float32)
    cosine = jnp.dot(mean, reference) / (jnp.sqrt(squared_norm) * jnp.linalg.norm(reference))
    return stats._replace(cosine=cosine, squared_error=jnp.sum((mean - reference) ** 2))


def compared_weightings(config: Config, *, learned: bool | None = None, discount: float | None = None,
                        gae_lambdas: tuple[float, ...] = (0.9, 0.95, 0.99)) -> dict[str, Config]:
    """The weightings to compare on the same episodes, as Configs derived from a run's `config`.

    Each keeps the run's environment, network, reduction, step loss and hyperparameters but those listed, so
    that the estimators differ by their weights only (one trajectory serves all):

    | name | returns | baseline | gamma |
    |---|---|---|---|
    | run | the run's own config, as it is (its own weighting too) | | |
    | episode | episode (whole return) | none | 1 |
    | reward_to_go | reward_to_go | none | 1 |
    | discounted | reward_to_go | none | `discount` |
    | constant | reward_to_go | constant (the run's baseline_constant; only where it is not 0) | 1 |
    | batch_mean | reward_to_go | batch_mean | 1 |
    | episode_norm | reward_to_go | episode_norm (tutorial 001) | `discount` |
    | batch_norm | reward_to_go | batch_norm | `discount` |
    | value | reward_to_go | value, advantage return (learned only) | the run's |
    | gae_<lambda> | reward_to_go | value, advantage gae, gae_lambda (learned only) | the run's |

    Args:
      config: the run's configuration.
      learned: include the learned value's weightings (their `gradients` need the run's value parameters);
        None: where the run's baseline is learned.
      discount: gamma of the discounted weightings (None: the run's gamma where it is below 1, else 0.99).
      gae_lambdas: the lambdas of GAE's entries.

    Returns:
      {name: Config}, in the table's order.

    Raises:
      ValueError: a discount or a lambda outside [0, 1].
    """
    hparams = config.hparams
    discount = (hparams.gamma if hparams.gamma < 1 else 0.99) if discount is None else discount
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")
    if any(not 0.0 <= lam <= 1.0 for lam in gae_lambdas):
        raise ValueError(f"gae_lambdas must be in [0, 1], got {gae_lambdas}")
    learned = is_learned(config.static.baseline) if learned is None else learned

    def derived(returns: str, baseline: str, advantage: str = "return", **numbers: float) -> Config:
        static = dataclasses.replace(config.static, returns=returns, baseline=baseline, advantage=advantage,
                                     weighting="")
        return Config(static, hparams.replace(**numbers))

    weightings = {
        "run": config,
        "episode": derived("episode", "none", gamma=1.0),
        "reward_to_go": derived("reward_to_go", "none", gamma=1.0),
        "discounted": derived("reward_to_go", "none", gamma=discount),
    }
    if hparams.baseline_constant != 0:
        weightings["constant"] = derived("reward_to_go", "constant", gamma=1.0)
    weightings["batch_mean"] = derived("reward_to_go", "batch_mean", gamma=1.0)
    weightings["episode_norm"] = derived("reward_to_go", "episode_norm", gamma=discount)
    weightings["batch_norm"] = derived("reward_to_go", "batch_norm", gamma=discount)
    if learned:
        weightings["value"] = derived("reward_to_go", "value")
        for lam in gae_lambdas:
            weightings[f"gae_{lam:g}"] = derived("reward_to_go", "value", "gae", gae_lambda=lam)
    return weightings


# Steps `sliced_episode_gradients` differentiates at once (training's --gradient-stats): on CartPole-v1's default
# preset, whose episodes grow from about 20 to 500 steps, slices of 64 spare the padding of short episodes
SLICE_STEPS = 64


def sliced_episode_gradients(apply_fn: ApplyFn, dist: Distribution, params: Any, traj: Trajectory,
                             weights: StepWeights, entropy_coef: jax.Array | float, step_loss: StepLoss | None = None,
                             slice_steps: int = SLICE_STEPS) -> jax.Array:
    """`episode_gradients` summed over time slices of `slice_steps` steps, up to the run's longest episode only.

    The loss is a sum over steps, so each g_e is the sum of its slices' gradients; a `lax.while_loop` takes
    slices until the longest episode of the run (of the batch of runs, vmapped) has ended, so the padding of
    short episodes up to the step limit T is not differentiated (training's `--gradient-stats`,
    `pgjax.algo.trainer`). The same function as `episode_gradients`, its sums in another order.

    Args:
      apply_fn, dist, params, traj, weights, entropy_coef, step_loss: as `episode_gradients`'.
      slice_steps: S, steps differentiated at once (the last slice overlaps the one before where S does not
        divide T; the steps it repeats are masked out).

    Returns:
      [E, P] float32, as `episode_gradients`.
    """
    num_steps = traj.valid.shape[0]
    size = min(slice_steps, num_steps)
    longest = jnp.max(jnp.sum(traj.valid, axis=0))

    def take(x, at):
        return jax.lax.dynamic_slice_in_dim(x, at, size, axis=0)

    def add_slice(carry):
        start, total = carry
        at = jnp.minimum(start, num_steps - size)  # the last slice ends at T
        fresh = at + jnp.arange(size) >= start  # [S]: the steps no slice before took
        part = Trajectory(take(traj.obs, at), take(traj.action, at), take(traj.reward, at), take(traj.valid, at),
                          traj.truncated, traj.loop_steps)
        part_weights = StepWeights(take(weights.weight, at), jnp.where(fresh[:, None], take(weights.coef, at), 0.0))
        return start + size, total + episode_gradients(apply_fn, dist, params, part, part_weights, entropy_coef,
                                                       step_loss)

    zeros = jnp.zeros((traj.valid.shape[1], flatten_gradient(params).size), jnp.float32)
    return jax.lax.while_loop(lambda carry: carry[0] < longest, add_slice, (jnp.int32(0), zeros))[1]
