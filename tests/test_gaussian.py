"""Gaussian policies for Box actions: log-probabilities, clipping and squashing against direct computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from pgjax.algo.envs import make_env
from pgjax.algo.fast.blocks import make_policy_gradient
from pgjax.algo.policy import MLPPolicy, gaussian, gaussian_log_prob
from pgjax.algo.rollout import make_collect

LOW, HIGH = np.array([-2.0, 0.0]), np.array([2.0, 3.0])  # two action dimensions, half ranges 2 and 1.5
HALF, CENTRE = (HIGH - LOW) / 2, (HIGH + LOW) / 2


def _out(mean, log_std):
    mean, log_std = np.broadcast_arrays(np.asarray(mean, np.float32), np.asarray(log_std, np.float32))
    return jnp.concatenate([mean, log_std], axis=-1)


def test_clipped_log_prob_is_the_clipped_gaussians_density_and_tail_masses():
    """Inside the bounds: the normal density of the env action; at a bound: the tail mass beyond it."""
    rng = np.random.default_rng(0)
    mean, log_std = rng.normal(0, 0.8, (50, 2)), rng.normal(-0.3, 0.5, (50, 2))
    action = np.clip(rng.normal(mean, np.exp(log_std)), -1, 1).astype(np.float32)  # normalised, clipped
    action[::5, 0], action[1::7, 1] = 1.0, -1.0  # plenty of clipped dimensions
    got = np.asarray(gaussian_log_prob(_out(mean, log_std), action, "clip", HALF.astype(np.float32)))
    # direct: in env units, a = centre + half * u ~ N(centre + half * mean, half * std) before clipping
    env_mean, env_std, env_action = CENTRE + HALF * mean, HALF * np.exp(log_std), CENTRE + HALF * action
    inside = stats.norm.logpdf(env_action, env_mean, env_std)
    at_low = stats.norm.logcdf(LOW, env_mean, env_std)
    at_high = stats.norm.logsf(HIGH, env_mean, env_std)
    want = np.where(action <= -1, at_low, np.where(action >= 1, at_high, inside)).sum(axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_tanh_log_prob_includes_the_squashing_jacobian():
    rng = np.random.default_rng(1)
    mean, log_std = rng.normal(0, 1, (40, 2)), rng.normal(0, 0.5, (40, 2))
    u = rng.normal(mean, np.exp(log_std)) * 3  # some far in tanh's saturation
    out, half = _out(mean, log_std), HALF.astype(np.float32)
    got = np.asarray(gaussian_log_prob(out, u.astype(np.float32), "tanh", half))
    # a = centre + half * tanh(u): log p(a) = log N(u) - log |da/du|, |da/du| = half * (1 - tanh(u)^2)
    jacobian = np.log(HALF) + np.log1p(-np.tanh(u) ** 2)
    want = (stats.norm.logpdf(u, mean, np.exp(log_std)) - np.where(np.isfinite(jacobian), jacobian, np.nan)).sum(-1)
    finite = np.isfinite(want)  # float64's tanh saturates past |u| ~ 19; pgjax's stable form does not
    assert finite.sum() > 30
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(got))


def test_clipped_samples_put_the_tail_mass_on_the_bounds():
    mean, log_std = np.array([[0.8, -0.2]]), np.array([[0.0, -1.0]])
    dist = gaussian(LOW, HIGH, "clip")
    stored = np.asarray(dist.sample(jax.random.key(0), jnp.tile(_out(mean, log_std), (20000, 1))))
    assert stored.shape == (20000, 2) and stored.dtype == np.float32
    assert np.all((stored >= -1) & (stored <= 1))
    # P(u >= 1) for dimension 0: 1 - Phi((1 - 0.8) / 1)
    np.testing.assert_allclose((stored[:, 0] == 1).mean(), stats.norm.sf(0.2), atol=0.01)
    np.testing.assert_allclose((stored[:, 0] == -1).mean(), stats.norm.cdf(-1.8), atol=0.01)
    env = np.asarray(dist.to_env(stored))
    assert np.all((env >= LOW) & (env <= HIGH))
    np.testing.assert_allclose(env, CENTRE + HALF * stored, rtol=1e-6, atol=1e-6)


def test_greedy_is_the_mean_and_entropy_is_the_gaussians():
    mean, log_std = np.array([[1.7, -0.3]]), np.array([[0.2, -0.5]])
    out = _out(mean, log_std)
    clip, tanh = gaussian(LOW, HIGH, "clip"), gaussian(LOW, HIGH, "tanh")
    np.testing.assert_allclose(clip.to_env(clip.greedy(out)), [[2.0, CENTRE[1] - 0.3 * HALF[1]]], rtol=1e-6)
    np.testing.assert_allclose(tanh.to_env(tanh.greedy(out)), CENTRE + HALF * np.tanh(mean), rtol=1e-6)
    np.testing.assert_allclose(clip.entropy(out), stats.norm.entropy(0, np.exp(log_std)).sum(-1), rtol=1e-6)


T, E, D, A = 10, 3, 3, 2
MODULE = MLPPolicy(num_actions=A, hidden=(8,), gaussian=True)


def _apply(params, obs):
    return MODULE.apply({"params": params}, obs)


@pytest.mark.parametrize("squash", ["clip", "tanh"])
def test_gaussian_gradient_matches_per_step_estimator(squash):
    """The blocked gradient with float action buffers [T, E, A] against one step at a time."""
    rng = np.random.default_rng(2)
    dist = gaussian(LOW, HIGH, squash)
    params = MODULE.init(jax.random.key(0), jnp.zeros(D))["params"]
    params = {**params, "log_std": jnp.array([-0.5, 0.3])}
    valid = np.arange(T)[:, None] < np.array([T, 4, 1])[None, :]
    obs = np.where(valid[..., None], rng.normal(size=(T, E, D)), 0).astype(np.float32)
    action = np.array(dist.sample(jax.random.key(1), _apply(params, obs)))
    action[0, 0] = 1.0 if squash == "clip" else action[0, 0]
    action = np.where(valid[..., None], action, 0).astype(np.float32)
    weight = np.where(valid, rng.normal(size=(T, E)), 0).astype(np.float32)
    coef = valid / valid.sum()
    gradient = make_policy_gradient(_apply, dist, block_rows=6)
    _, grads, entropy = gradient(params, obs, action, weight, coef, valid, 0.01)
    step_grad = jax.jit(jax.grad(lambda p, o, a, w, c: c * (-dist.log_prob(_apply(p, o), a) * w
                                                            - 0.01 * dist.entropy(_apply(p, o)))))
    want = jax.tree.map(jnp.zeros_like, params)
    for t, e in zip(*np.nonzero(valid)):
        g = step_grad(params, obs[t, e], action[t, e], weight[t, e], coef[t, e])
        want = jax.tree.map(jnp.add, want, g)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=2e-4, atol=1e-6), grads, want)
    assert abs(grads["log_std"]).max() > 0
    np.testing.assert_allclose(entropy, stats.norm.entropy(0, np.exp([-0.5, 0.3])).sum(), rtol=1e-5)


def test_gaussian_rollout_stores_float_actions_and_steps_the_env_with_their_env_values():
    spec = make_env("Pendulum-v1")
    assert spec.action_kind == "continuous" and spec.action_low == (-2.0,) and spec.action_high == (2.0,)
    spec = spec._replace(params=spec.params.replace(max_steps_in_episode=12), max_steps=12)
    dist = gaussian(spec.action_low, spec.action_high, "clip")
    module = MLPPolicy(1, hidden=(8,), gaussian=True)
    params = module.init(jax.random.key(0), jnp.zeros(3))["params"]
    params = {**params, "log_std": jnp.array([0.5])}  # wide: many clipped actions
    traj = jax.jit(make_collect(spec, lambda p, o: module.apply({"params": p}, o), 4, dist))(params, jax.random.key(3))
    action = np.asarray(traj.action)
    assert action.shape == (12, 4, 1) and action.dtype == np.float32
    assert np.all(np.abs(action) <= 1) and np.any(np.abs(action) == 1)
    assert np.all(np.asarray(traj.valid)) and np.all(np.asarray(traj.truncated))  # Pendulum only truncates
    # replay: the recorded rewards are the env's for the env actions centre + half * stored
    env, env_params = spec.env, spec.params
    obs = np.asarray(traj.obs)
    from gymnax.environments.classic_control.pendulum import EnvState

    for t in range(11):
        theta = np.arctan2(obs[t, 0, 1], obs[t, 0, 0])
        state = EnvState(theta=theta, theta_dot=obs[t, 0, 2], last_u=0.0, time=t)
        next_obs, _, reward, _, _ = env.step_env(jax.random.key(0), state, 2.0 * action[t, 0], env_params)
        np.testing.assert_allclose(reward, traj.reward[t, 0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(next_obs, obs[t + 1, 0], rtol=1e-4, atol=1e-4)
