"""The REINFORCE loss and gradient against independent computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo import loss as plain
from pgjax.algo.fast.blocks import make_policy_gradient as blocked_policy_gradient
from pgjax.algo.policy import MLPPolicy, log_prob
from pgjax.algo.policy import entropy as categorical_entropy
from pgjax.algo.presets import PRESETS
from pgjax.algo.weights import apply_baseline, step_coefficients, step_returns

T, E, D, A = 12, 3, 4, 3
MODULE = MLPPolicy(num_actions=A, hidden=(8,))


def apply_fn(params, obs):
    return MODULE.apply({"params": params}, obs)


def make_policy_gradient(apply_fn, block_rows, dist=None, entropy_bonus=None):
    """The blocked policy gradient (`pgjax.algo.fast.blocks`) in blocks of `block_rows` steps."""
    return blocked_policy_gradient(apply_fn, dist, block_rows=block_rows, entropy_bonus=entropy_bonus)


def make_batch(seed: int):
    rng = np.random.default_rng(seed)
    lengths = np.array([T, 5, 1])
    valid = np.arange(T)[:, None] < lengths[None, :]
    obs = np.where(valid[..., None], rng.normal(size=(T, E, D)), 0).astype(np.float32)
    action = np.where(valid, rng.integers(0, A, size=(T, E)), 0).astype(np.int32)
    reward = np.where(valid, rng.normal(size=(T, E)), 0).astype(np.float32)
    params = MODULE.init(jax.random.key(seed), jnp.zeros(D))["params"]
    return params, obs, action, reward, valid, lengths


grad_logp = jax.jit(jax.grad(lambda p, o, a: log_prob(apply_fn(p, o), a)))
grad_ent = jax.jit(jax.grad(lambda p, o: categorical_entropy(apply_fn(p, o))))


def estimator_by_loop(params, obs, action, weight, coef, valid, entropy_coef):
    """sum_{t,e} c * (-w * grad log pi(a|s) - beta * grad H), one step at a time."""
    total = jax.tree.map(np.zeros_like, params)
    for t in range(T):
        for e in range(E):
            if not valid[t, e]:
                continue
            g = grad_logp(params, obs[t, e], action[t, e])
            h = grad_ent(params, obs[t, e])
            total = jax.tree.map(
                lambda acc, gl, gh: acc + coef[t, e] * (-weight[t, e] * gl - entropy_coef * gh), total, g, h
            )
    return total


# slices of 2, 5 (last one overlapping) and 12 steps; None: the plain gradient of `pgjax.algo.loss`
@pytest.mark.parametrize("block_rows", [6, 15, 36, None])
def test_gradient_matches_per_step_estimator(block_rows):
    params, obs, action, reward, valid, _ = make_batch(0)
    weight = np.asarray(apply_baseline(step_returns(reward, valid, 0.9, "reward_to_go"), valid, "batch_norm"))
    coef = np.asarray(step_coefficients(valid, "episode_sum"))
    pg = make_policy_gradient(apply_fn, block_rows) if block_rows else plain.make_policy_gradient(apply_fn)
    loss, grads, entropy = pg(params, obs, action, weight, coef, valid, 0.01)
    want = estimator_by_loop(params, obs, action, weight, coef, valid, 0.01)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=2e-4, atol=1e-6), grads, want)
    ent = categorical_entropy(apply_fn(params, obs))
    np.testing.assert_allclose(entropy, ent[valid].mean(), rtol=1e-5)


@pytest.mark.parametrize("entropy_coef", [0.0, 0.01])
def test_static_entropy_bonus_equals_the_run_time_choice(entropy_coef):
    """entropy_bonus fixed at trace time (as sweeps do) gives the run-time `lax.cond`'s results bitwise."""
    params, obs, action, reward, valid, _ = make_batch(3)
    weight = np.asarray(apply_baseline(step_returns(reward, valid, 0.9, "reward_to_go"), valid, "batch_norm"))
    coef = np.asarray(step_coefficients(valid, "episode_sum"))
    batch = (params, obs, action, weight, coef, valid, entropy_coef)
    chosen = jax.jit(make_policy_gradient(apply_fn, 15))(*batch)
    fixed = jax.jit(make_policy_gradient(apply_fn, 15, entropy_bonus=entropy_coef != 0))(*batch)
    jax.tree.map(np.testing.assert_array_equal, fixed, chosen)
    if entropy_coef:  # and the bonus is really there
        without = make_policy_gradient(apply_fn, 15, entropy_bonus=False)(*batch)
        assert not all(jax.tree.leaves(jax.tree.map(np.allclose, without[1], chosen[1])))


@pytest.mark.parametrize("block_rows", [4, 72])  # one run per block; two (3 runs: one padded block)
def test_vmapped_gradient_equals_each_run_alone(block_rows):
    """Runs gathered into blocks of runs and time slices each get their own gradient."""
    batches = [make_batch(s) for s in (1, 2, 5)]
    stacked = [jnp.stack(x) for x in zip(*[b[1:5] for b in batches])]
    params = jax.tree.map(lambda *x: jnp.stack(x), *[b[0] for b in batches])
    obs, action, reward, valid = stacked
    returns = jax.vmap(lambda r, v: step_returns(r, v, 1.0, "episode"))(reward, valid)
    weight = jax.vmap(lambda g, v: apply_baseline(g, v, "constant", 2.0))(returns, valid)
    coef = jax.vmap(lambda v: step_coefficients(v, "step_mean"))(valid)
    pg = make_policy_gradient(apply_fn, block_rows)
    loss, grads, _ = jax.jit(jax.vmap(pg, (0, 0, 0, 0, 0, 0, None)))(params, obs, action, weight, coef, valid, 0.0)
    for k in range(3):
        one = jax.tree.map(lambda x: x[k], (params, obs, action, weight, coef, valid))
        loss_k, grads_k, _ = pg(*one, 0.0)
        np.testing.assert_allclose(loss[k], loss_k, rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[k], b, rtol=1e-5, atol=1e-7), grads, grads_k)


def pgjax_loss(preset: str, params, obs, action, reward, valid):
    """The loss pgjax optimises under a preset, for a batch of episodes."""
    config = PRESETS[preset]
    s, h = config.static, config.hparams
    weight = apply_baseline(step_returns(reward, valid, h.gamma, s.returns), valid, s.baseline, h.baseline_constant)
    coef = step_coefficients(valid, s.reduction)
    loss, _, _ = make_policy_gradient(apply_fn, 16)(params, obs, action, weight, coef, valid, h.entropy_coef)
    return float(loss)


def test_seed_a_loss_is_tutorial_000():
    """loss = -mean(log pi(a_t|s_t)) * (sum(rewards) - 15) over one episode."""
    params, obs, action, reward, valid, lengths = make_batch(3)
    n = lengths[1]
    obs, action, reward, valid = (x[:, 1:2] for x in (obs, action, reward, valid))
    logp = np.asarray(log_prob(apply_fn(params, obs[:n, 0]), action[:n, 0]))
    want = -logp.mean() * (reward[:n, 0].sum() - 15)
    np.testing.assert_allclose(pgjax_loss("seed-a", params, obs, action, reward, valid), want, rtol=1e-5)


def test_seed_b_loss_is_tutorial_001():
    """loss = sum_t -log pi(a_t|s_t) * (G_t - mean G) / std(G), gamma 0.9, torch's std."""
    params, obs, action, reward, valid, lengths = make_batch(4)
    obs, action, reward, valid = (x[:, :1] for x in (obs, action, reward, valid))
    r = reward[:, 0]
    g = np.array([sum(0.9**k * x for k, x in enumerate(r[t:])) for t in range(T)])
    g = (g - g.mean()) / g.std(ddof=1)
    logp = np.asarray(log_prob(apply_fn(params, obs[:, 0]), action[:, 0]))
    np.testing.assert_allclose(pgjax_loss("seed-b", params, obs, action, reward, valid), np.sum(-logp * g), rtol=1e-4)
