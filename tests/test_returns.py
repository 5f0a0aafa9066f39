"""Returns, baselines and reductions against plain Python loops over random episodes."""

from __future__ import annotations

import numpy as np
import pytest

from pgjax.algo.weights import apply_baseline, discounted_returns, step_coefficients, step_returns

T, E = 12, 5


def random_batch(seed: int):
    """Random rewards; episode lengths in 1..T, some cut off at T (truncations)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=E)
    lengths[0] = T  # at least one truncated episode
    lengths[1] = 1  # and a one-step one
    reward = np.zeros((T, E), np.float32)
    valid = np.zeros((T, E), bool)
    for e, n in enumerate(lengths):
        reward[:n, e] = rng.normal(size=n)
        valid[:n, e] = True
    return reward, valid, lengths


def loop_reward_to_go(rewards, gamma):
    out = []
    for t in range(len(rewards)):
        out.append(sum(gamma**k * r for k, r in enumerate(rewards[t:])))
    return np.array(out)


def torch_std(x):
    return np.std(x, ddof=1) if len(x) > 1 else np.nan


@pytest.mark.parametrize("gamma", [0.0, 0.9, 1.0])
def test_discounted_returns_match_loop(gamma):
    reward, valid, lengths = random_batch(0)
    got = np.asarray(discounted_returns(reward, gamma))
    for e, n in enumerate(lengths):
        np.testing.assert_allclose(got[:n, e], loop_reward_to_go(reward[:n, e], gamma), rtol=1e-5, atol=1e-5)
        assert np.all(got[n:, e] == 0)


def test_episode_returns_are_the_discounted_total_on_every_step():
    reward, valid, lengths = random_batch(1)
    got = np.asarray(step_returns(reward, valid, 0.95, "episode"))
    for e, n in enumerate(lengths):
        total = sum(0.95**t * r for t, r in enumerate(reward[:n, e]))
        np.testing.assert_allclose(got[:n, e], total, rtol=1e-5, atol=1e-5)
        assert np.all(got[n:, e] == 0)


@pytest.mark.parametrize("kind", ["none", "constant", "batch_mean", "episode_norm", "batch_norm"])
def test_baselines_match_loop(kind):
    reward, valid, lengths = random_batch(2)
    returns = np.asarray(step_returns(reward, valid, 0.9, "reward_to_go"))
    got = np.asarray(apply_baseline(returns, valid, kind, 15.0))
    all_steps = np.concatenate([returns[:n, e] for e, n in enumerate(lengths)])
    for e, n in enumerate(lengths):
        g = returns[:n, e]
        if kind == "none":
            want = g
        elif kind == "constant":
            want = g - 15.0
        elif kind == "batch_mean":
            want = g - all_steps.mean()
        elif kind == "episode_norm":
            std = torch_std(g)
            # a one-step episode has no sample std: pgjax leaves it centred (all zeros)
            want = (g - g.mean()) / (std if np.isfinite(std) and std > 0 else 1.0)
        else:
            want = (g - all_steps.mean()) / torch_std(all_steps)
        np.testing.assert_allclose(got[:n, e], want, rtol=1e-4, atol=1e-5)
        assert np.all(got[n:, e] == 0)


@pytest.mark.parametrize("gamma", [1.0, 0.99])
def test_batch_norm_of_equal_episodes_gives_zero_weights(gamma):
    """A batch of identical (e.g. all perfect) episodes carries no signal, whatever the rounding."""
    reward = np.ones((500, 8), np.float32)
    valid = np.ones((500, 8), bool)
    weights = np.asarray(apply_baseline(step_returns(reward, valid, gamma, "episode"), valid, "batch_norm"))
    assert np.abs(weights).max() < 1e-3


@pytest.mark.parametrize("kind", ["episode_mean", "episode_sum", "step_mean"])
def test_reduction_coefficients(kind):
    _, valid, lengths = random_batch(3)
    got = np.asarray(step_coefficients(valid, kind))
    for e, n in enumerate(lengths):
        want = {"episode_mean": 1 / (E * n), "episode_sum": 1 / E, "step_mean": 1 / lengths.sum()}[kind]
        np.testing.assert_allclose(got[:n, e], want, rtol=1e-6)
        assert np.all(got[n:, e] == 0)
