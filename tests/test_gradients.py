"""`pgjax.algo.gradients` against closed forms and against the trainer's own gradient.

The bandit: K arms, one-step episodes with a constant observation, and a tabular softmax policy whose logits
z are its only parameters (`logits_network`), pi = softmax(z), arm a paying r_a. The expected return is
J = sum_a pi_a r_a, and since d log pi_a / d z_b = 1[a = b] - pi_b,

    dJ / dz_b = sum_a pi_a r_a (1[a = b] - pi_b) = pi_b (r_b - J).

With one-step episodes every reduction gives c = 1 / E, so the per-episode estimate of the loss's gradient
(`make_episode_gradients`: E * grad of the episode's c * -log pi(a) * w) is, for the arm a drawn and weight
w_a = r_a - b (returns "episode" or "reward_to_go", baseline "none": b = 0, "constant": b = baseline_constant),

    g_b = -(r_a - b) (1[a = b] - pi_b),

a discrete random vector taking K values with probabilities pi_a. It is unbiased for any constant b:

    E[g_b] = -pi_b (r_b - J) - b * sum_a pi_a (1[a = b] - pi_b) = -dJ / dz_b   (the second sum is 0),

and its variance per component is the closed form

    Var(g_b) = sum_a pi_a (r_a - b)^2 (1[a = b] - pi_b)^2 - (pi_b (r_b - J))^2,

whose sum over b is the per-episode variance tr Cov(g) (`estimator_statistics`' episode_variance):
sum_a pi_a (r_a - b)^2 (1 - 2 pi_a + |pi|^2) - |dJ/dz|^2. The sample mean of n estimates is within
z * sqrt(Var(g_b) / n) of -dJ/dz_b (CLT), and the sample variance within z * sqrt((mu4_b - Var(g_b)^2) / n)
of Var(g_b), mu4_b the fourth central moment, exact from the same K values and probabilities.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import environment, spaces

from pgjax.algo.config import Config, FastPaths, Hyperparams, StaticConfig
from pgjax.algo.envs import env_for
from pgjax.algo.gradients import (
    compared_weightings,
    estimator_statistics,
    flatten_gradient,
    make_episode_gradients,
    reference_gradient,
)
from pgjax.algo.pieces import choose_pieces
from pgjax.algo.trainer import make_trainer
from pgjax.algo.validation import validate_config
from tests.conftest import small_config
from tests.custom import returns_to_go

REWARDS = np.array([1.5, 0.0, -1.0])
LOGITS = np.array([0.0, 0.5, -0.3])
EPISODES = 20_000
Z = 5.0  # half-width of the intervals, in standard errors (a few comparisons: a false failure is ~1e-6 likely)


class Bandit(environment.Environment):
    """K arms; one step per episode; observation the constant [0.0]; reward `REWARDS[action]`."""

    @property
    def default_params(self) -> environment.EnvParams:
        return environment.EnvParams(max_steps_in_episode=2)

    def reset_env(self, key, params):
        return jnp.zeros(1, jnp.float32), environment.EnvState(time=0)

    def step_env(self, key, state, action, params):
        reward = jnp.asarray(REWARDS, jnp.float32)[action]
        return jnp.zeros(1, jnp.float32), environment.EnvState(time=state.time + 1), reward, jnp.bool_(True), {}

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(len(REWARDS))


class Logits(nn.Module):
    """A tabular softmax policy: the logits are the parameter "logits" [K] (initialised to `LOGITS`), whatever
    the observation."""

    num_outputs: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        logits = self.param("logits", lambda key, shape: jnp.asarray(LOGITS, jnp.float32), (self.num_outputs,))
        return jnp.broadcast_to(logits, obs.shape[:-1] + (self.num_outputs,))


def logits_network(spec, static, num_outputs: int, gaussian: bool) -> Logits:
    """A `NetworkFactory` (`--network tests.test_gradients:logits_network`): `Logits`."""
    return Logits(num_outputs)


def bandit_config(**static) -> Config:
    """The bandit's config: `EPISODES` episodes a batch, whole return, no baseline, but for `static`."""
    fields = dict(env="tests.test_gradients:Bandit", network="tests.test_gradients:logits_network",
                  episodes_per_update=EPISODES, returns="episode", baseline="none", reduction="step_mean")
    return Config(StaticConfig(**{**fields, **static}), Hyperparams())


def bandit_moments(baseline: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The closed forms of the module's docstring: (mean [K], variance [K], fourth central moment [K], trace
    of the covariance) of the per-episode estimate g under a constant baseline `baseline`."""
    pi = np.exp(LOGITS) / np.exp(LOGITS).sum()
    value = pi @ REWARDS
    mean = -pi * (REWARDS - value)
    values = -(REWARDS - baseline)[:, None] * (np.eye(len(pi)) - pi[None, :])  # [a, b]: g_b when arm a is drawn
    variance = (pi[:, None] * values**2).sum(axis=0) - mean**2
    fourth = (pi[:, None] * (values - mean[None, :]) ** 4).sum(axis=0)
    trace = pi @ ((REWARDS - baseline) ** 2 * (1 - 2 * pi + pi @ pi)) - mean @ mean
    return mean, variance, fourth, trace


@pytest.mark.parametrize("returns, baseline, constant", [
    ("episode", "none", 0.0),
    ("episode", "constant", 0.4),
    ("reward_to_go", "constant", -0.7),
])
def test_bandit_estimates_average_to_the_exact_gradient_with_the_closed_form_variance(returns, baseline, constant):
    config = bandit_config(returns=returns, baseline=baseline)
    config = dataclasses.replace(config, hparams=config.hparams.replace(baseline_constant=constant))
    validate_config(config)
    estimates = make_episode_gradients(config, Bandit())
    params = {"logits": jnp.asarray(LOGITS, jnp.float32)}
    traj = jax.jit(estimates.collect)(params, jax.random.key(7))
    assert bool(traj.valid[0].all()) and not traj.valid[1:].any()  # one step each (rows for the step limit, 2)
    grads = np.asarray(jax.jit(estimates.gradients)(params, traj), np.float64)
    assert grads.shape == (EPISODES, len(REWARDS))

    mean, variance, fourth, trace = bandit_moments(constant)
    mean_error = Z * np.sqrt(variance / EPISODES)
    assert np.all(mean_error < np.abs(mean) / 2)  # the interval tells the gradient from 0 and from its negative
    np.testing.assert_array_less(np.abs(grads.mean(axis=0) - mean), mean_error)
    variance_error = Z * np.sqrt((fourth - variance**2) / EPISODES)
    np.testing.assert_array_less(np.abs(grads.var(axis=0, ddof=1) - variance), variance_error)
    stats = estimator_statistics(jnp.asarray(grads, jnp.float32), jnp.asarray(mean, jnp.float32))
    assert abs(float(stats.episode_variance) - trace) < variance_error.sum()
    assert float(stats.cosine) > 0.999


def test_a_constant_baseline_changes_the_variance_as_the_closed_form_says():
    """On the same episodes, the per-episode variance under baselines b = J, 0 and -1 each agree with the closed
    form (within the sum of the components' intervals), and they rise in that order, as the closed form has it."""
    pi = np.exp(LOGITS) / np.exp(LOGITS).sum()
    params = {"logits": jnp.asarray(LOGITS, jnp.float32)}
    traj, closed, measured = None, [], []
    for constant in (float(pi @ REWARDS), 0.0, -1.0):
        config = bandit_config(baseline="constant")
        config = dataclasses.replace(config, hparams=config.hparams.replace(baseline_constant=constant))
        estimates = make_episode_gradients(config, Bandit())
        traj = estimates.collect(params, jax.random.key(3)) if traj is None else traj  # the same episodes for all
        _, variance, fourth, trace = bandit_moments(constant)
        closed.append(trace)
        measured.append(float(estimator_statistics(estimates.gradients(params, traj)).episode_variance))
        assert abs(measured[-1] - trace) < (Z * np.sqrt((fourth - variance**2) / EPISODES)).sum()
    assert closed[0] < closed[1] < closed[2] and measured[0] < measured[1] < measured[2]


IDENTITY_CONFIGS = {  # CartPole-v1 (the default preset's), but where named
    "default": {},
    "value_gae_entropy": dict(returns="reward_to_go", baseline="value", advantage="gae", reduction="episode_sum"),
    "episode_norm": dict(returns="reward_to_go", baseline="episode_norm", reduction="episode_mean"),
    "own_weighting": dict(weighting="tests.custom:returns_to_go", baseline="none"),
    "pendulum_gaussian": dict(env="Pendulum-v1", returns="reward_to_go", baseline="batch_norm"),
}


@pytest.mark.parametrize("name", list(IDENTITY_CONFIGS))
def test_the_mean_over_episodes_is_the_trainers_gradient(name):
    """On the episodes of the trainer's own update: the norm of the estimates' mean is the update's grad_norm,
    and the mean is step 3's gradient (`choose_pieces(...).policy_gradient`) on the reference and default paths."""
    config = small_config(**IDENTITY_CONFIGS[name])
    config = dataclasses.replace(config, hparams=config.hparams.replace(entropy_coef=0.01, gamma=0.99))
    hparams = config.hparams.as_arrays()
    reference = FastPaths.reference()
    trainer = make_trainer(config, fast=reference)
    state = jax.jit(trainer.init)(jax.random.key(1), hparams)
    estimates = make_episode_gradients(config)
    traj = jax.jit(estimates.collect)(state.params, jax.random.split(state.key)[1])  # the trainer's update's episodes
    grads = jax.jit(estimates.gradients)(state.params, traj, state.value_params)
    assert grads.shape[0] == config.static.episodes_per_update
    _, metrics = jax.jit(trainer.update)(state, hparams)
    np.testing.assert_allclose(float(jnp.linalg.norm(grads.mean(axis=0))), float(metrics.grad_norm), rtol=1e-5)
    spec = env_for(config.static)
    for paths in (reference, FastPaths()):  # step 3 of the update, on the plain path and the default one
        pieces = choose_pieces(spec, config, paths, weighting=returns_to_go if config.static.weighting else None)
        weights = jax.jit(pieces.weighting.weights)(state.value_params, traj, hparams)
        _, update_grads, _ = jax.jit(pieces.policy_gradient)(state.params, traj.obs, traj.action, weights.weight,
                                                             weights.coef, traj.valid, hparams.entropy_coef)
        np.testing.assert_allclose(grads.mean(axis=0), flatten_gradient(update_grads), rtol=2e-5, atol=1e-7)


def test_every_compared_weighting_on_one_trajectory():
    """Every weighting of a run with a learned value gives [E, P] estimates on the same episodes; the run's own
    is the run's gradient, and the weightings differ."""
    run = small_config(returns="reward_to_go", baseline="value", episodes_per_update=6)
    run = dataclasses.replace(run, hparams=run.hparams.replace(gamma=0.99, baseline_constant=15.0))
    hparams = run.hparams.as_arrays()
    state = make_trainer(run, fast=FastPaths.reference()).init(jax.random.key(2), hparams)
    traj = make_episode_gradients(run).collect(state.params, jax.random.key(5))
    means = {}
    for name, config in compared_weightings(run, gae_lambdas=(0.9,)).items():
        grads = make_episode_gradients(config).gradients(state.params, traj, state.value_params)
        assert grads.shape == (6, flatten_gradient(state.params).shape[0]) and bool(jnp.isfinite(grads).all())
        means[name] = np.asarray(grads.mean(axis=0))
    np.testing.assert_array_equal(means["run"], means["value"])  # the run's weighting is "value" at its gamma
    names = list(means)[1:]
    assert all(not np.allclose(means[a], means[b]) for i, a in enumerate(names) for b in names[i + 1:])


def test_reference_gradient_is_the_mean_of_its_batches_with_its_own_variance():
    config = small_config()
    state = make_trainer(config, fast=FastPaths.reference()).init(jax.random.key(0), config.hparams.as_arrays())
    estimates = make_episode_gradients(config)
    key = jax.random.key(9)
    batch_means = jax.jit(jax.vmap(lambda k: estimates.gradients(state.params, estimates.collect(state.params, k))
                                   .mean(axis=0)))
    batches = np.asarray(batch_means(jax.random.split(key, 4)))
    for at_once in (1, 3):  # a group of 3 and one of 1: the same batches, vmapped or not
        reference = jax.jit(lambda p, k, n=at_once: reference_gradient(estimates, p, k, 4, batches_at_once=n))(
            state.params, key)
        np.testing.assert_allclose(reference.mean, batches.mean(axis=0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(reference.variance, batches.var(axis=0, ddof=1).sum() / 4, rtol=1e-4)
    assert np.isnan(reference_gradient(estimates, state.params, key, 1).variance)
    with pytest.raises(ValueError, match="num_batches and batches_at_once must be >= 1"):
        reference_gradient(estimates, state.params, key, 0)


def test_a_learned_weighting_needs_the_value_parameters():
    estimates = make_episode_gradients(small_config(returns="reward_to_go", baseline="value"))
    with pytest.raises(ValueError, match="give its value_params"):
        estimates.gradients(None, None)


def test_estimator_statistics_against_numpy():
    grads = np.array([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0], [2.0, 0.0, 1.0], [-0.5, 1.5, 0.5]])
    reference = np.array([1.0, 1.0, 0.0])
    stats = estimator_statistics(jnp.asarray(grads), jnp.asarray(reference))
    mean = grads.mean(axis=0)
    episode_variance = np.trace(np.cov(grads, rowvar=False, ddof=1))
    expected = dict(mean_norm=np.linalg.norm(mean), episode_variance=episode_variance,
                    variance=episode_variance / 4, snr=mean @ mean / (episode_variance / 4),
                    cosine=mean @ reference / (np.linalg.norm(mean) * np.linalg.norm(reference)),
                    squared_error=np.sum((mean - reference) ** 2))
    for field, value in expected.items():
        np.testing.assert_allclose(float(getattr(stats, field)), value, rtol=1e-6, err_msg=field)
    plain = estimator_statistics(jnp.asarray(grads))
    assert plain.cosine is None and plain.squared_error is None
    np.testing.assert_allclose(float(plain.snr), expected["snr"], rtol=1e-6)


@pytest.mark.parametrize("grads, reference, message", [
    (np.ones(3), None, "shape \\[E, P\\]"),
    (np.ones((1, 3)), None, "E >= 2"),
    (np.ones((4, 3)), np.ones(2), "reference must have shape"),
])
def test_estimator_statistics_refuses_other_shapes(grads, reference, message):
    with pytest.raises(ValueError, match=message):
        estimator_statistics(grads, reference)


def test_compared_weightings():
    run = small_config(returns="reward_to_go", baseline="value")
    run = dataclasses.replace(run, hparams=run.hparams.replace(gamma=0.99, baseline_constant=15.0))
    weightings = compared_weightings(run, gae_lambdas=(0.9, 0.97))
    assert list(weightings) == ["run", "episode", "reward_to_go", "discounted", "constant", "batch_mean",
                                "episode_norm", "batch_norm", "value", "gae_0.9", "gae_0.97"]
    assert weightings["run"] is run
    for config in weightings.values():
        validate_config(config)
        assert config.static.reduction == run.static.reduction and config.static.env == run.static.env
    assert weightings["discounted"].hparams.gamma == 0.99 and weightings["episode"].hparams.gamma == 1.0
    assert weightings["episode_norm"].static.baseline == "episode_norm"
    assert weightings["gae_0.97"].static.advantage == "gae" and weightings["gae_0.97"].hparams.gae_lambda == 0.97
    fixed = compared_weightings(small_config())
    assert "value" not in fixed and "constant" not in fixed and fixed["discounted"].hparams.gamma == 0.99
    with pytest.raises(ValueError, match="discount must be in"):
        compared_weightings(run, discount=1.5)
