"""The fast paths (every one on, the default) against the plain reference path.

`FastPaths.reference()` is `jax.value_and_grad` of the loss over whole
trajectories, a plain `jax.vmap` over runs, autodiff dense layers and
`jax.nn.log_softmax`. Here it keeps the inverse-CDF sampler (which draws
other samples than `jax.random.categorical` from one key) so that both paths
see the same episodes; `test_samplers_draw_from_the_same_distribution` covers
the sampler.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.config import Config, FastPaths
from pgjax.algo.envs import make_env
from pgjax.algo.fast.blocks import make_value_gradient
from pgjax.algo.loss import make_value_gradient as plain_value_gradient
from pgjax.algo.pieces import choose_collect, choose_network, choose_pieces
from pgjax.algo.policy import (
    make_apply_fn,
    make_distribution,
    make_policy,
    make_value_fn,
    make_value_network,
    plain_sample,
    sample,
)
from pgjax.algo.presets import preset_config
from pgjax.algo.trainer import make_train, make_trainer
from pgjax.algo.weights import step_coefficients

from .conftest import small_config

FAST = FastPaths(block_rows=64)
# same episodes: the same sampler, and the same environment step (gymnax's jitted `step` orders the dynamics' floats
# otherwise; the two routes are compared in tests/test_env_contract.py)
REFERENCE = dataclasses.replace(FastPaths.reference(), inverse_cdf_sampling=True, skip_auto_reset=True)
RUNS = 3


def _shrunk(env: str, **static) -> Config:
    config = preset_config("default", env)
    fields = {"hidden": (16,), "episodes_per_update": 3, "num_updates": 1, **static}
    return Config(dataclasses.replace(config.static, **fields), config.hparams)


CONFIGS = {
    "categorical": small_config(episodes_per_update=3),
    "value_gae": _shrunk("Acrobot-v1"),  # a learned value baseline with GAE, value_norm
    "gaussian": _shrunk("Pendulum-v1", hidden=(16, 16)),  # Box actions, clipped Gaussian, value baseline
}


def _close(got, want, rtol=2e-4, atol=1e-6):
    jax.tree.map(lambda g, w: np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol),
                 got, want)


@pytest.fixture(scope="module", params=list(CONFIGS))
def setup(request):
    """A config, its hparams for RUNS runs and the initial state (the same for both paths)."""
    config = CONFIGS[request.param]
    hparams = config.hparams.broadcast(RUNS)
    keys = jax.vmap(jax.random.key)(jnp.arange(RUNS))
    state = jax.jit(jax.vmap(make_trainer(config).init))(keys, hparams)
    return request.param, config, hparams, state


def test_one_update_agrees_with_the_reference(setup):
    name, config, hparams, state = setup
    results = [jax.jit(jax.vmap(make_trainer(config, fast=paths).update))(state, hparams)
               for paths in (FAST, REFERENCE)]
    (fast_state, fast_metrics), (ref_state, ref_metrics) = results
    # the same episodes...
    np.testing.assert_array_equal(fast_metrics.episode_returns, ref_metrics.episode_returns)
    np.testing.assert_array_equal(fast_metrics.env_steps, ref_metrics.env_steps)
    # ...the same loss, gradient norm, entropy, value loss, and updated parameters
    for field in ("loss", "grad_norm", "entropy", "value_loss", "explained_variance"):
        np.testing.assert_allclose(getattr(fast_metrics, field), getattr(ref_metrics, field), rtol=2e-4, atol=1e-6,
                                   err_msg=f"{name}: {field}")
    _close((fast_state.params, fast_state.value_params), (ref_state.params, ref_state.value_params), atol=1e-5)
    assert not np.asarray(fast_state.diverged).any()
    if name != "categorical":
        assert np.all(np.asarray(fast_metrics.value_loss) > 0)


def test_gradients_agree_with_the_reference(setup):
    """On one batch of episodes: the policy gradient (and the value network's) of both paths."""
    name, config, hparams, state = setup
    spec = make_env(config.static.env)
    results = []
    for paths in (FAST, REFERENCE):
        pieces = choose_pieces(spec, config, paths)
        weighting = pieces.weighting
        collect, gradient = pieces.collect, pieces.policy_gradient
        value_fn = make_value_fn(choose_network(make_value_network(spec, config), spec, paths))
        value_gradient = (make_value_gradient(value_fn, block_rows=paths.block_rows) if paths.blocked_gradient
                          else plain_value_gradient(value_fn))

        def losses(state, hparams):  # one run's
            traj = collect(state.params, state.key)
            weights = weighting.weights(state.value_params, traj, hparams)
            policy = gradient(state.params, traj.obs, traj.action, weights.weight, weights.coef, traj.valid,
                              hparams.entropy_coef + 0.01)  # the entropy bonus's gradient too
            if weights.target is None:
                return traj.action, policy, None
            coef = step_coefficients(traj.valid, "step_mean")
            return traj.action, policy, value_gradient(state.value_params, traj.obs, weights.target, coef, traj.valid)

        results.append(jax.jit(jax.vmap(losses))(state, hparams))
    (fast_action, fast_policy, fast_value), (ref_action, ref_policy, ref_value) = results
    np.testing.assert_array_equal(fast_action, ref_action)
    _close(fast_policy, ref_policy)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(fast_policy[1])) > 0
    if name != "categorical":
        _close(fast_value, ref_value)


@pytest.fixture(scope="module")
def categorical_update():
    """The categorical config's initial state of two runs and its update by the fast path."""
    config = CONFIGS["categorical"]
    hparams = config.hparams.broadcast(2)
    trainer = make_trainer(config, fast=FAST)
    state = jax.jit(jax.vmap(trainer.init))(jax.vmap(jax.random.key)(jnp.arange(2)), hparams)
    return state, hparams, jax.jit(jax.vmap(trainer.update))(state, hparams)


# run_major_buffers applies to image observations only: test_run_major_buffers_give_the_same_episodes
@pytest.mark.parametrize("path", ["fold_runs", "blocked_gradient", "feature_major_dense"])
def test_each_fast_path_alone_off_agrees(path, categorical_update):
    """Turning one fast path off changes at most the order of float sums."""
    state, hparams, (fast_state, fast_metrics) = categorical_update
    off = dataclasses.replace(FAST, **{path: False})
    slow, slow_metrics = jax.jit(jax.vmap(make_trainer(CONFIGS["categorical"], fast=off).update))(state, hparams)
    np.testing.assert_array_equal(fast_metrics.episode_returns, slow_metrics.episode_returns)
    np.testing.assert_allclose(fast_metrics.loss, slow_metrics.loss, rtol=2e-4, atol=1e-6)
    _close(fast_state.params, slow.params, atol=1e-5)


def test_run_major_buffers_give_the_same_episodes():
    """Image observations (Catch-bsuite): run-major and time-major buffers hold the same trajectories."""
    spec = make_env("Catch-bsuite")
    config = Config(dataclasses.replace(small_config().static, env="Catch-bsuite"), small_config().hparams)
    apply_fn = make_apply_fn(make_policy(spec, config))
    dist = make_distribution(spec, config.static.squash)
    keys = jax.vmap(jax.random.key)(jnp.arange(3))
    params = jax.vmap(lambda k: make_policy(spec, config).init(k, jnp.zeros(spec.obs_shape))["params"])(keys)
    trajs = [jax.jit(jax.vmap(choose_collect(spec, apply_fn, 2, dist, paths=FastPaths(run_major_buffers=flag))))(
        params, keys) for flag in (True, False)]
    assert trajs[0].obs.shape == (3, spec.max_steps, 2, *spec.obs_shape)
    jax.tree.map(np.testing.assert_array_equal, trajs[0], trajs[1])


def test_samplers_draw_from_the_same_distribution():
    """Inverse-CDF sampling and `jax.random.categorical`: the softmax's frequencies, within sampling error."""
    logits = jnp.array([[0.3, -1.2, 2.0, 0.0], [5.0, -5.0, 0.0, 0.1]])
    n = 40000
    probs = np.asarray(jax.nn.softmax(logits))
    for sampler in (sample, plain_sample):
        draws = np.asarray(sampler(jax.random.key(0), jnp.broadcast_to(logits, (n, 2, 4))))
        assert draws.dtype == np.int32
        freq = np.stack([(draws == a).mean(axis=0) for a in range(4)], axis=-1)
        np.testing.assert_allclose(freq, probs, atol=4 * np.sqrt(0.25 / n))


def test_whole_training_by_the_reference_path(categorical_update):
    """`make_train(config, fast=...)` under a plain `jax.vmap`: the first update is the fast path's."""
    state, hparams, (_, fast_metrics) = categorical_update
    config = dataclasses.replace(CONFIGS["categorical"], static=dataclasses.replace(
        CONFIGS["categorical"].static, num_updates=2))
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    _, metrics = jax.jit(jax.vmap(make_train(config, fast=REFERENCE)))(keys, hparams)
    assert metrics.loss.shape == (2, 2)
    np.testing.assert_array_equal(metrics.episode_returns[:, 0], fast_metrics.episode_returns)
    np.testing.assert_allclose(metrics.loss[:, 0], fast_metrics.loss, rtol=2e-4, atol=1e-6)


def test_im2col_convolution_is_the_plain_convolution():
    """`Im2colConv` (one product over shifted copies) and the plain `TorchConv` (`lax.conv`), vmapped over
    runs' kernels as the trainer does, and its gradient; and `choose_network` swapping a CNN policy's
    convolutions only when `im2col_convolution` is on, an MLP's layers only when it takes the feature-major pass."""
    from pgjax.algo.fast.networks import FeatureMajorMLP, Im2colConv
    from pgjax.algo.policy import CNNPolicy, MLPPolicy, TorchConv

    x = jax.random.normal(jax.random.key(0), (RUNS, 5, 7, 6, 2))  # [runs, batch, H, W, C]
    im2col, plain = Im2colConv(4), TorchConv(4)
    params = jax.vmap(lambda k: plain.init(k, x[0]))(jax.random.split(jax.random.key(1), RUNS))

    def outputs(module):
        return jax.vmap(lambda p, xs: module.apply(p, xs))(params, x)

    def gradient(module):
        return jax.grad(lambda p: jnp.sum(jnp.tanh(jax.vmap(module.apply)(p, x))))(params)

    _close(outputs(im2col), outputs(plain), rtol=1e-5, atol=1e-5)
    _close(gradient(im2col), gradient(plain), rtol=1e-4, atol=1e-5)
    spec = make_env("Catch-bsuite")
    cnn = CNNPolicy(3, conv=(4,), hidden=(8,))
    off = dataclasses.replace(FAST, im2col_convolution=False)
    assert choose_network(cnn, spec, off) is cnn
    assert choose_network(cnn, spec, FAST).conv_layer is Im2colConv
    mlp = MLPPolicy(3, hidden=(64,))
    cartpole = make_env("CartPole-v1")
    assert type(choose_network(mlp, cartpole, FAST)) is FeatureMajorMLP
    assert choose_network(mlp, cartpole, dataclasses.replace(FAST, feature_major_dense=False)) is mlp
    image = jax.random.normal(jax.random.key(2), (2, 10, 10, 2))
    cnn_params = cnn.init(jax.random.key(3), image[0])
    _close(cnn.apply(cnn_params, image), choose_network(cnn, spec, FAST).apply(cnn_params, image),
           rtol=1e-5, atol=1e-5)
