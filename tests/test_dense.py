"""`pgjax.algo.fast.networks.dense_stack`'s hand-written backward pass against autodiff of the plain layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.config import FastPaths
from pgjax.algo.envs import make_env
from pgjax.algo.fast import blocks
from pgjax.algo.fast.networks import FeatureMajorMLP, dense_layers, dense_stack, feature_major
from pgjax.algo.pieces import choose_network
from pgjax.algo.policy import MLPPolicy, categorical, make_policy
from pgjax.algo.policy import gaussian as gaussian_distribution
from pgjax.algo.presets import preset_config


def _layers(widths, seed=0):
    keys = jax.random.split(jax.random.key(seed), 2 * len(widths))
    return tuple(
        (jax.random.normal(keys[2 * i], (fan_in, width)), jax.random.normal(keys[2 * i + 1], (width,)))
        for i, (fan_in, width) in enumerate(zip(widths[:-1], widths[1:]))
    )


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("widths", [(4, 32, 2), (6, 16, 8, 1), (5, 3)])
def test_dense_stack_matches_autodiff_of_the_plain_layers(activation, widths):
    layers = _layers(widths)
    x = jax.random.normal(jax.random.key(1), (3, 5, widths[0]))
    cotangent = jax.random.normal(jax.random.key(2), (3, 5, widths[-1]))

    def objective(stack):  # a nonlinear function of the output, so the cotangent varies per row
        return lambda layers, x: jnp.sum(jnp.sin(stack(activation, layers, x)) * cotangent)

    np.testing.assert_array_equal(dense_stack(activation, layers, x), dense_layers(activation, layers, x))
    for fn in (jax.grad, lambda f, argnums: jax.vmap(jax.grad(f, argnums), (None, 0))):  # also under vmap over x
        got = fn(objective(dense_stack), (0, 1))(layers, x)
        want = fn(objective(dense_layers), (0, 1))(layers, x)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5), got, want)
    value, _ = jax.value_and_grad(objective(dense_stack))(layers, x)
    np.testing.assert_allclose(value, objective(dense_layers)(layers, x), rtol=1e-5)


@pytest.mark.parametrize("gaussian", [False, True])
def test_feature_major_policy_gradient_matches_autodiff(gaussian):
    """Same parameters, same batch: the REINFORCE loss and gradient (entropy bonus on) agree."""
    T, E, D, A = 10, 3, 4, 2
    rng = np.random.default_rng(0)
    valid = np.arange(T)[:, None] < np.array([T, 6, 2])[None, :]
    obs = np.where(valid[..., None], rng.normal(size=(T, E, D)), 0).astype(np.float32)
    if gaussian:
        dist = gaussian_distribution([-2.0, -1.0], [2.0, 1.0])
        action = np.clip(rng.normal(size=(T, E, A)), -1, 1).astype(np.float32)
    else:
        dist = categorical()
        action = rng.integers(0, A, size=(T, E)).astype(np.int32)
    weight = np.where(valid, rng.normal(size=(T, E)), 0).astype(np.float32)
    coef = (valid / valid.sum()).astype(np.float32)
    results = []
    for cls in (MLPPolicy, FeatureMajorMLP):
        module = cls(A, hidden=(16, 8), activation="tanh", gaussian=gaussian)
        params = module.init(jax.random.key(3), jnp.zeros(D))["params"]
        apply_fn = lambda p, o, module=module: module.apply({"params": p}, o)  # noqa: E731
        gradient = blocks.make_policy_gradient(apply_fn, dist, block_rows=16, entropy_bonus=True)
        results.append((params, gradient(params, obs, action, weight, coef, valid, jnp.float32(0.05))))
    (params0, (loss0, grads0, ent0)), (params1, (loss1, grads1, ent1)) = results
    jax.tree.map(np.testing.assert_array_equal, params0, params1)  # the same parameters and names
    np.testing.assert_allclose(loss1, loss0, rtol=1e-5)
    np.testing.assert_allclose(ent1, ent0, rtol=1e-5)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6), grads1, grads0)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads0)) > 0


@pytest.mark.parametrize(
    ("env", "setting", "expected"),
    [
        ("CartPole-v1", None, True),  # 4 inputs into 32
        ("Catch-bsuite", None, True),  # 50 inputs into 64
        ("Breakout-MinAtar", None, False),  # 400 inputs into 64
        ("CartPole-v1", False, False),  # an explicit setting wins
        ("Breakout-MinAtar", True, True),
    ],
)
def test_feature_major_backward_is_decided_by_the_first_layer(env, setting, expected):
    config = preset_config("default", env)
    paths = FastPaths(feature_major_dense=setting)
    spec = make_env(env)
    policy = make_policy(spec, config)
    assert type(policy) is MLPPolicy
    assert feature_major(policy, spec, paths.feature_major_dense) is expected
    assert (type(choose_network(policy, spec, paths)) is FeatureMajorMLP) is expected
