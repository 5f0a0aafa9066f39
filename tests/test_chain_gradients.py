"""`pgjax.algo.gradients` against closed forms on a short chain MDP (`tests.chain_mdp`; issue 39).

The chain (`SlipChain`: 3 states, exit or advance, a slip of probability 0.3, the goal's reward 3, at most 4
steps, so a truncation too) under a tabular softmax policy pi(a | s) = softmax(theta[s])_a gives 24 episodes tau
in all (`all_episodes`), each of probability P(tau) = p_env(tau) prod_t pi(a_t | s_t), p_env the product of its
slips' and moves' probabilities. The expected return (gamma = 1) is the finite sum

    J(theta) = sum_tau P(tau) R(tau),    R(tau) = sum_t r_t,

a JAX function of theta (`expected_return`), so grad J is `jax.grad` of it, exact up to float32 rounding; a
backward induction over the steps left (`dynamic_programming_return`) gives the same J.

The estimates. The update's loss is sum_e L_e with L_e = sum_t c_t,e (-log pi(a_t,e | s_t,e) w_t,e) (no entropy
bonus), and `make_episode_gradients` gives g_e = E grad L_e, with k = E c:

    g(tau) = -sum_t k_t w_t grad log pi(a_t | s_t),
    d log pi(a | s) / d theta[s', b] = 1[s' = s] (1[a = b] - pi(b | s)).

Reduction "episode_sum" has k = 1, "episode_mean" k = 1 / len(tau); both make g_e a function of its own episode,
so the g_e of a batch are independent draws of a random vector taking the 24 values g(tau) with probabilities
P(tau). Its exact mean, covariance Sigma, per-component fourth central moments and E|g - mean|^4 are finite sums
(`estimator_moments`). "step_mean" has k = E / sum_e' len_e', which couples the episodes (below).

Which are unbiased, E[g] = -grad J. The likelihood ratio gives grad J = E[R(tau) sum_t grad log pi(a_t | s_t)].
With k = 1 and w_t = R (returns "episode") the estimate is exactly its negative. Given the history up to s_t
(which also decides that step t exists), E[grad log pi(a_t | s_t)] = sum_a grad pi(a | s_t) = 0, so any term
of w_t fixed before a_t is drawn adds nothing to the mean: the rewards before t (returns "reward_to_go", gamma
= 1, drops them) and a constant baseline b. So the four weightings {episode, reward_to_go} x {no baseline,
b = 1.5} with "episode_sum" are unbiased, and differ in variance only. Not unbiased: reward-to-go with gamma < 1
and no gamma^t factor (it weighs late rewards less than J does); "episode_mean", whose 1 / len(tau) depends
on the actions at and after t (here it even turns the first state's component around); "step_mean", whose mean
over a batch is sum_e X_e / sum_e len_e (X_e the "episode_sum" estimate), a ratio that tends to
-grad J / E[len] as E grows (the right direction, scaled), with variance Var(X_p - rho_p len) / (E E[len]^2),
rho = E[X] / E[len], by the delta method.

The intervals, for n independent draws (Z = 5 standard errors). The sample mean is within Z sqrt(Sigma_pp / n) of
the mean (CLT). The sample variance of a component, within Z sqrt((mu4_p - Sigma_pp^2) / n) of Sigma_pp. The
trace of the sample covariance S_n (ddof 1), what `estimator_statistics` calls episode_variance, has exactly

    Var(tr S_n) = (E|g - mean|^4 - (tr Sigma)^2) / n + 2 tr(Sigma^2) / (n (n - 1))

(from Cov(s_ij, s_kl) = (mu_ijkl - Sigma_ij Sigma_kl) / n + (Sigma_ik Sigma_jl + Sigma_il Sigma_jk) / (n (n - 1))).
A batch's estimate, the mean of E episodes' g_e, has covariance Sigma / E and E|mean - E[g]|^4 =
(E|g - mean|^4 + (E - 1) ((tr Sigma)^2 + 2 tr(Sigma^2))) / E^3 (the index patterns of a fourth power of a mean),
so the same formula gives the interval of the sample variance of many batches' estimates around tr Sigma / E,
and the mean over B batches of their `estimator_statistics(...).variance` = tr S_E / E is within
Z sqrt(Var(tr S_E) / B) / E of tr Sigma / E.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.gradients import estimator_statistics, make_episode_gradients
from pgjax.algo.rollout import Trajectory
from tests.chain_mdp import (
    ADVANCE,
    MAX_STEPS,
    NUM_STATES,
    TABLE,
    Moments,
    all_episodes,
    chain_config,
    dynamic_programming_return,
    estimator_moments,
    expected_return,
    moments,
    numpy_probabilities,
    per_episode_estimates,
    step_weights,
)

EPISODES = 20_000
BATCH = 8  # E of the update whose estimate's variance is checked: EPISODES // BATCH batches
Z = 5.0  # half-width of the intervals, in standard errors
BASELINE = 1.5  # the constant baseline b (J is 1.38)
UNBIASED = {  # name: (returns, baseline constant), all with gamma 1 and reduction "episode_sum"
    "episode": ("episode", 0.0),
    "episode_constant": ("episode", BASELINE),
    "reward_to_go": ("reward_to_go", 0.0),
    "reward_to_go_constant": ("reward_to_go", BASELINE),
}
BIASED = {  # name: (returns, gamma, reduction), no baseline
    "discounted": ("reward_to_go", 0.8, "episode_sum"),
    "episode_mean": ("reward_to_go", 1.0, "episode_mean"),
    "episode_total_episode_mean": ("episode", 1.0, "episode_mean"),
}


def weighting_config(returns: str, constant: float = 0.0, gamma: float = 1.0, reduction: str = "episode_sum"):
    config = chain_config(EPISODES, returns=returns, baseline="constant" if constant else "none", reduction=reduction)
    return dataclasses.replace(config, hparams=config.hparams.replace(baseline_constant=constant, gamma=gamma))


def trace_sd(m: Moments, n: int) -> float:
    """The standard deviation of tr S_n, the trace of the sample covariance (ddof 1) of n draws (docstring)."""
    return float(np.sqrt((m.trace_fourth - m.trace**2) / n + 2 * m.trace_square / (n * (n - 1))))


def batch_mean_moments(m: Moments, size: int) -> Moments:
    """The trace moments of the mean of `size` independent draws (the per-component ones are not needed)."""
    trace_fourth = (m.trace_fourth + (size - 1) * (m.trace**2 + 2 * m.trace_square)) / size**3
    return m._replace(trace=m.trace / size, trace_square=m.trace_square / size**2, trace_fourth=trace_fourth)


def in_batches(traj: Trajectory, size: int) -> Trajectory:
    """`traj`'s E episodes as E // size trajectories of `size` episodes, stacked on a leading axis."""
    def split(x, axis):
        x = x.reshape(x.shape[:axis] + (-1, size) + x.shape[axis + 1:])
        return jnp.moveaxis(x, axis, 0)

    count = traj.valid.shape[1] // size
    return Trajectory(obs=split(traj.obs, 1), action=split(traj.action, 1), reward=split(traj.reward, 1),
                      valid=split(traj.valid, 1), truncated=split(traj.truncated, 0),
                      loop_steps=jnp.broadcast_to(traj.loop_steps, (count,)), last_obs=split(traj.last_obs, 0))


@pytest.fixture(scope="module")
def params():
    return {"table": jnp.asarray(TABLE, jnp.float32)}


@pytest.fixture(scope="module")
def exact_gradient():
    """-grad J at `TABLE`, flattened as the estimates' columns ([P] float64)."""
    return -np.asarray(jax.grad(expected_return)(jnp.asarray(TABLE, jnp.float32), all_episodes()),
                       np.float64).ravel()


@pytest.fixture(scope="module")
def trajectory(params):
    """`EPISODES` fresh episodes of the chain, collected by pgjax."""
    estimates = make_episode_gradients(weighting_config("reward_to_go"))
    return jax.jit(estimates.collect)(params, jax.random.key(11))


@pytest.fixture(scope="module")
def estimates(params, trajectory):
    """{name: [EPISODES, P] float64} pgjax's per-episode estimates of every weighting of `UNBIASED` and
    `BIASED`, and of reward_to_go under "step_mean", on the same episodes."""
    configs = {name: weighting_config(returns, constant) for name, (returns, constant) in UNBIASED.items()}
    configs |= {name: weighting_config(returns, gamma=gamma, reduction=reduction)
                for name, (returns, gamma, reduction) in BIASED.items()}
    configs["step_mean"] = weighting_config("reward_to_go", reduction="step_mean")
    return {name: np.asarray(jax.jit(make_episode_gradients(config).gradients)(params, trajectory), np.float64)
            for name, config in configs.items()}


def test_the_enumerated_episodes_are_the_chains(trajectory):
    """The enumeration is the chain pgjax steps: probabilities summing to 1, the J of backward induction, and
    each of the 24 episodes as frequent in pgjax's rollout as its probability says (within its interval)."""
    episodes = all_episodes()
    probabilities = numpy_probabilities(TABLE, episodes)
    assert len(probabilities) == 24 and abs(probabilities.sum() - 1) < 1e-12
    table = jnp.asarray(TABLE, jnp.float32)
    np.testing.assert_allclose(float(expected_return(table, episodes)), float(dynamic_programming_return(table)),
                               rtol=1e-6)
    np.testing.assert_allclose(jax.grad(expected_return)(table, episodes), jax.grad(dynamic_programming_return)(table),
                               rtol=1e-5, atol=1e-7)

    valid = np.asarray(trajectory.valid).T  # [E, T]
    assert valid.shape == (EPISODES, MAX_STEPS) and valid[:, 0].all()
    state = np.where(valid, np.asarray(trajectory.obs).argmax(axis=-1).T, 0)
    action, reward = np.asarray(trajectory.action).T, np.asarray(trajectory.reward).T
    sampled = np.concatenate([state, action, reward, valid], axis=-1)  # [E, 4 T]
    enumerated = np.concatenate([episodes.state, episodes.action, episodes.reward, episodes.valid], axis=-1)
    matches = (sampled[:, None, :] == enumerated[None, :, :]).all(axis=-1)  # [E, 24]
    assert (matches.sum(axis=-1) == 1).all()  # every episode drawn is one enumerated
    which = matches.argmax(axis=-1)
    frequency = np.bincount(which, minlength=len(probabilities)) / EPISODES
    np.testing.assert_array_less(np.abs(frequency - probabilities),
                                 Z * np.sqrt(probabilities * (1 - probabilities) / EPISODES) + 1e-12)
    lengths = episodes.valid.sum(axis=-1)
    cut_off = (lengths == MAX_STEPS) & (episodes.action[:, -1] == ADVANCE) & (episodes.state[:, -1] < NUM_STATES - 1)
    np.testing.assert_array_equal(np.asarray(trajectory.truncated), cut_off[which])
    assert 0.01 < probabilities[cut_off].sum() and frequency[cut_off].sum() > 0  # truncations are drawn


@pytest.mark.parametrize("name", list(UNBIASED))
def test_unbiased_estimates_average_to_the_exact_gradient_with_the_exact_variance(name, estimates, exact_gradient):
    """(a) The mean of 20k episodes' g_e is within its interval of -grad J; (b) each component's sample variance
    and their sum, `estimator_statistics`' episode_variance, within theirs of the exact variances."""
    returns, constant = UNBIASED[name]
    exact = estimator_moments(returns, constant)
    np.testing.assert_allclose(exact.mean, exact_gradient, rtol=1e-5)  # unbiased: the enumeration agrees
    grads = estimates[name]
    mean_error = Z * np.sqrt(exact.variance / EPISODES)
    assert np.all(mean_error < np.abs(exact_gradient) / 2)  # the interval tells -grad J from 0 and from +grad J
    np.testing.assert_array_less(np.abs(grads.mean(axis=0) - exact_gradient), mean_error)
    variance_error = Z * np.sqrt((exact.fourth - exact.variance**2) / EPISODES)
    np.testing.assert_array_less(np.abs(grads.var(axis=0, ddof=1) - exact.variance), variance_error)
    stats = estimator_statistics(jnp.asarray(grads, jnp.float32), jnp.asarray(exact_gradient, jnp.float32))
    assert abs(float(stats.episode_variance) - exact.trace) < Z * trace_sd(exact, EPISODES)
    assert float(stats.cosine) > 0.99


@pytest.mark.parametrize("name", list(UNBIASED))
def test_the_variance_of_a_batchs_estimate(name, params, trajectory, estimates):
    """(c) In batches of E = 8: the sample variance of the 2500 batches' estimates, and the mean of their
    `estimator_statistics(...).variance`, are each within its interval of the exact tr Sigma / E."""
    returns, constant = UNBIASED[name]
    exact = estimator_moments(returns, constant)
    gradients = make_episode_gradients(weighting_config(returns, constant)).gradients
    batches = jax.jit(jax.vmap(gradients, in_axes=(None, 0)))(params, in_batches(trajectory, BATCH))  # [B, E, P]
    count = EPISODES // BATCH
    assert batches.shape == (count, BATCH, 2 * NUM_STATES)
    # An episode's estimate does not depend on its batch (k = 1): the same numbers as the 20k episodes' own.
    np.testing.assert_allclose(np.asarray(batches).reshape(EPISODES, -1), estimates[name], rtol=1e-6, atol=1e-6)
    batch_means = np.asarray(batches, np.float64).mean(axis=1)
    target = exact.trace / BATCH
    measured = batch_means.var(axis=0, ddof=1).sum()
    assert abs(measured - target) < Z * trace_sd(batch_mean_moments(exact, BATCH), count)
    reported = np.asarray(jax.vmap(estimator_statistics)(batches).variance, np.float64)
    assert abs(reported.mean() - target) < Z * trace_sd(exact, BATCH) / np.sqrt(count) / BATCH
    assert abs(reported.mean() - measured) < Z * (trace_sd(batch_mean_moments(exact, BATCH), count)
                                                  + trace_sd(exact, BATCH) / np.sqrt(count) / BATCH)


def test_reward_to_go_has_the_same_mean_and_a_lower_variance_exactly(exact_gradient):
    """(d) The tutorials' comparison, exactly: reward-to-go and the whole episode's return have the same mean,
    -grad J, and reward-to-go the lower per-episode variance, with or without the constant baseline (which
    lowers both)."""
    for constant in (0.0, BASELINE):
        episode, togo = estimator_moments("episode", constant), estimator_moments("reward_to_go", constant)
        np.testing.assert_allclose(togo.mean, episode.mean, rtol=1e-12)
        np.testing.assert_allclose(togo.mean, exact_gradient, rtol=1e-5)
        assert togo.trace < 0.8 * episode.trace
    assert estimator_moments("reward_to_go", BASELINE).trace < estimator_moments("reward_to_go").trace
    assert estimator_moments("episode", BASELINE).trace < estimator_moments("episode").trace


@pytest.mark.parametrize("name", list(BIASED))
def test_biased_weightings_have_another_mean_that_the_interval_tells_apart(name, estimates, exact_gradient):
    """(e) A biased weighting's exact mean (by enumeration) is outside the interval of the unbiased test around
    -grad J, so that test would fail on it; and pgjax's estimates do average to that exact mean."""
    returns, gamma, reduction = BIASED[name]
    exact = estimator_moments(returns, reduction=reduction, gamma=gamma)
    mean_error = Z * np.sqrt(exact.variance / EPISODES)
    assert np.any(np.abs(exact.mean - exact_gradient) > 2 * mean_error)
    np.testing.assert_array_less(np.abs(estimates[name].mean(axis=0) - exact.mean), mean_error)


def test_step_mean_tends_to_the_gradient_over_the_mean_length(trajectory, estimates, exact_gradient):
    """"step_mean": the batch's estimate sum_e X_e / sum_e len_e is within its delta-method interval of
    -grad J / E[len], and is the "episode_sum" estimates' sum over the batch's steps."""
    episodes = all_episodes()
    probabilities = numpy_probabilities(TABLE, episodes)
    lengths = episodes.valid.sum(axis=-1)
    per_episode = per_episode_estimates(TABLE, episodes, step_weights(episodes, "reward_to_go"),
                                        episodes.valid.astype(float))  # X(tau)
    mean_length = probabilities @ lengths
    ratio = probabilities @ per_episode / mean_length
    np.testing.assert_allclose(ratio, exact_gradient / mean_length, rtol=1e-5)
    linearised = moments(probabilities, per_episode - ratio[None, :] * lengths[:, None])
    mean_error = Z * np.sqrt(linearised.variance / EPISODES) / mean_length
    assert np.all(mean_error < np.abs(ratio) / 2)
    np.testing.assert_array_less(np.abs(estimates["step_mean"].mean(axis=0) - ratio), mean_error)
    steps = int(np.asarray(trajectory.valid).sum())
    np.testing.assert_allclose(estimates["step_mean"].mean(axis=0), estimates["reward_to_go"].sum(axis=0) / steps,
                               rtol=1e-5, atol=1e-7)
