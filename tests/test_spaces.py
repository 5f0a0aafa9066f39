"""Spaces pgjax serves beyond a float Box and Discrete actions (`pgjax.algo.envs`): Discrete, Dict and
Tuple observations, uint8 0..255 images (stored uint8, scaled in the network) and MultiDiscrete actions,
each with an environment of its own trained a few updates."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces

from pgjax.algo import envs
from pgjax.algo.config import Config
from pgjax.algo.envs import encode_batch, encoded_struct, observation_codec
from pgjax.algo.fast.networks import fast_network
from pgjax.algo.policy import (
    CNNPolicy,
    categorical,
    entropy,
    log_prob,
    make_distribution,
    make_policy,
    multi_categorical,
)
from pgjax.algo.presets import PRESETS
from pgjax.algo.rollout import make_collect
from pgjax.algo.trainer import make_train

SIDE = 5  # the image environment's images are SIDE x SIDE x 1


@struct.dataclass
class _State(environment.EnvState):
    target: jax.Array  # the rewarded action: int32 [] (or [D] for MultiDiscrete actions)
    obs: jax.Array


@struct.dataclass
class _Params(environment.EnvParams):
    max_steps_in_episode: int = 1


class _OneStep(environment.Environment):
    """One-step episodes: reward 1 for the action `_draw` says is right, 0 otherwise."""

    @property
    def default_params(self) -> _Params:
        return _Params()

    def reset_env(self, key, params):
        state = self._draw(key)
        return state.obs, state

    def step_env(self, key, state, action, params):
        reward = jnp.mean(jnp.asarray(action == state.target, jnp.float32))
        return state.obs, state.replace(time=state.time + 1), reward, jnp.bool_(True), {}

    def action_space(self, params):
        return spaces.Discrete(2)


class BrightPixel(_OneStep):
    """A uint8 image [5, 5, 1] of dim noise (0..60) and one pixel of 255, in the left two columns
    (action 0 is right) or the right two (action 1)."""

    def _draw(self, key):
        side_key, row_key, col_key, noise_key = jax.random.split(key, 4)
        target = jax.random.randint(side_key, (), 0, 2)
        row = jax.random.randint(row_key, (), 0, SIDE)
        col = jax.random.randint(col_key, (), 0, 2) + 3 * target
        image = jax.random.randint(noise_key, (SIDE, SIDE, 1), 0, 61).astype(jnp.uint8)
        return _State(time=0, target=target, obs=image.at[row, col, 0].set(255))

    def observation_space(self, params):
        return spaces.Box(0, 255, (SIDE, SIDE, 1), jnp.uint8)


class Cell(_OneStep):
    """A Discrete(4) observation (a state index, as FrozenLake's); action 1 is right in cells 2 and 3."""

    def _draw(self, key):
        cell = jax.random.randint(key, (), 0, 4)
        return _State(time=0, target=(cell >= 2).astype(jnp.int32), obs=cell)

    def observation_space(self, params):
        return spaces.Discrete(4)


class Keyed(_OneStep):
    """A Dict observation {"pos": float32 [2], "cell": Discrete(3), "img": uint8 0..255 [2, 2]}."""

    def _draw(self, key):
        pos_key, cell_key, img_key = jax.random.split(key, 3)
        cell = jax.random.randint(cell_key, (), 0, 3)
        obs = {"pos": jax.random.uniform(pos_key, (2,)), "cell": cell,
               "img": jax.random.randint(img_key, (2, 2), 0, 256).astype(jnp.uint8)}
        return _State(time=0, target=(cell == 2).astype(jnp.int32), obs=obs)

    def observation_space(self, params):
        return spaces.Dict({"pos": spaces.Box(0.0, 1.0, (2,)), "cell": spaces.Discrete(3),
                            "img": spaces.Box(0, 255, (2, 2), jnp.uint8)})


class MultiDiscrete:
    """A space of another package's class with gymnasium's MultiDiscrete attributes: sizes `nvec`."""

    def __init__(self, nvec):
        self.nvec, self.shape, self.dtype = np.asarray(nvec), (len(nvec),), jnp.int32


class Dials(_OneStep):
    """MultiDiscrete actions of sizes (3, 2); the reward is the share of entries set to (2, 1)."""

    def _draw(self, key):
        return _State(time=0, target=jnp.array([2, 1], jnp.int32), obs=jnp.ones(2, jnp.float32))

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (2,))

    def action_space(self, params):
        return MultiDiscrete((3, 2))


def _spec(env) -> envs.EnvSpec:
    """The spec make_env describes, without its trace of reset and step_env (`envs._check_transitions`
    compares raw observations, not encoded ones, with the space)."""
    return envs._describe(env, env.default_params, type(env).__name__, None, "float32")


def _config(**static) -> Config:
    fields = {"hidden": (16,), "episodes_per_update": 16, "num_updates": 3, **static}
    return dataclasses.replace(PRESETS["default"], static=dataclasses.replace(PRESETS["default"].static, **fields))


def _train(spec, seeds: int = 2, **static):
    _, metrics = jax.jit(jax.vmap(make_train(_config(**static), spec)))(jax.vmap(jax.random.key)(jnp.arange(seeds)))
    returns = np.asarray(metrics.episode_return)
    assert np.all(np.isfinite(np.asarray(metrics.loss))) and not np.asarray(metrics.diverged).any()
    assert np.all((returns >= 0) & (returns <= 1))
    return returns


def test_each_space_gets_its_codec():
    image = observation_codec(spaces.Box(0, 255, (SIDE, SIDE, 1), jnp.uint8), "img")
    assert image == ((SIDE, SIDE, 1), "uint8", 1 / 255, None, 0)
    binary = observation_codec(spaces.Box(0, 1, (10, 10, 4), jnp.uint8), "maps")  # 0/1 maps: not scaled
    assert binary.scale == 1.0 and binary.encode is None
    assert observation_codec(spaces.Box(0, 255, (3,)), "floats").scale == 1.0  # float32 0..255: not images
    cell = observation_codec(spaces.Discrete(4), "cell")
    assert cell.shape == (4,) and cell.dtype == "uint8"
    np.testing.assert_array_equal(jax.jit(cell.encode)(jnp.int32(2)), np.array([0, 0, 1, 0], np.uint8))
    pair = observation_codec(spaces.Tuple([spaces.Discrete(2), MultiDiscrete((2, 3))]), "pair")
    np.testing.assert_array_equal(pair.encode((1, jnp.array([1, 0]))), [0, 1, 0, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="has a MultiDiscrete action space of sizes \\[3, 0\\]"):
        _spec(type("Broken", (Dials,), {"action_space": lambda self, params: MultiDiscrete((3, 0))})())


def test_a_dict_observation_is_one_vector_in_sorted_key_order():
    spec = _spec(Keyed())
    assert spec.obs_shape == (3 + 4 + 2,) and spec.obs_dtype == "float32" and spec.obs_scale == 1.0
    obs, _ = Keyed().reset(jax.random.key(1), spec.params)
    want = np.concatenate([np.eye(3)[int(obs["cell"])], np.asarray(obs["img"]).reshape(4) / 255, obs["pos"]])
    np.testing.assert_allclose(spec.encode_obs(obs), want, rtol=1e-6)
    batch = jax.vmap(Keyed().reset, in_axes=(0, None))(jax.random.split(jax.random.key(2), 3), spec.params)[0]
    assert encode_batch(spec)(batch).shape == (3, 9)
    traced = jax.eval_shape(lambda key: Keyed().reset(key, spec.params)[0], jax.random.key(0))
    assert encoded_struct(spec, traced).shape == (9,)
    _train(spec)


def test_discrete_observations_are_one_hot_and_train():
    spec = _spec(Cell())
    assert spec.obs_shape == (4,) and spec.obs_dtype == "uint8"
    returns = _train(spec, num_updates=15)
    assert returns[:, -3:].mean() > returns[:, :3].mean()


def test_images_are_stored_as_uint8_and_the_network_sees_0_to_1():
    spec = _spec(BrightPixel())
    assert spec.obs_dtype == "uint8" and spec.obs_scale == 1 / 255 and spec.encode_obs is None
    module = make_policy(spec, _config())
    collect = make_collect(spec, lambda p, obs: module.apply({"params": p}, obs), 8, categorical())
    params = module.init(jax.random.key(0), jnp.zeros(spec.obs_shape))["params"]
    traj = jax.jit(collect)(params, jax.random.key(3))
    assert traj.obs.dtype == jnp.uint8 and traj.obs.shape == (1, 8, SIDE, SIDE, 1) and int(traj.obs.max()) == 255
    seen = []

    def record(next_fun, args, kwargs, context):
        if context.module.name == "TorchDense_0" and context.method_name == "__call__":
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        out = module.apply({"params": params}, traj.obs[0].astype(jnp.float32))
    assert 0.0 <= float(seen[0].min()) and float(seen[0].max()) == 1.0
    unscaled = module.clone(obs_scale=1.0).apply({"params": params}, traj.obs[0] / 255.0)
    np.testing.assert_allclose(out, unscaled, rtol=1e-5, atol=1e-6)
    fast = fast_network(module, spec, feature_major_dense=True)
    np.testing.assert_allclose(fast.apply({"params": params}, traj.obs[0].astype(jnp.float32)), out, rtol=1e-5,
                               atol=1e-6)


def test_a_cnn_scales_its_images_on_the_plain_and_fast_paths():
    spec = _spec(BrightPixel())
    module = make_policy(spec, _config(network="cnn", conv=(4,), hidden=(8,)))
    assert isinstance(module, CNNPolicy) and module.obs_scale == 1 / 255
    obs = jax.random.randint(jax.random.key(0), (3, *spec.obs_shape), 0, 256).astype(jnp.float32)
    params = module.init(jax.random.key(1), obs[0])["params"]
    out = module.apply({"params": params}, obs)
    np.testing.assert_allclose(module.clone(obs_scale=1.0).apply({"params": params}, obs / 255), out, rtol=1e-5,
                               atol=1e-6)
    fast = fast_network(module, spec, im2col_convolution=True)
    np.testing.assert_allclose(fast.apply({"params": params}, obs), out, rtol=1e-5, atol=1e-5)


def test_an_image_environment_learns_where_the_bright_pixel_is():
    """16 seeds of the default network (the preset's width): every seed's return rises from first to last."""
    returns = _train(_spec(BrightPixel()), seeds=16, num_updates=25, hidden=PRESETS["default"].static.hidden)
    first, last = returns[:, :3].mean(axis=1), returns[:, -3:].mean(axis=1)
    assert np.all(last > first) and last.mean() >= 0.8 > first.mean(), (first, last)


def test_multi_discrete_actions_are_independent_categoricals():
    dist = multi_categorical((3, 2))
    out = jax.random.normal(jax.random.key(0), (5, 5))
    action = dist.sample(jax.random.key(1), out)
    assert action.shape == (5, 2) and action.dtype == jnp.int32 and dist.action_shape == (2,)
    assert np.all((action[:, 0] >= 0) & (action[:, 0] < 3)) and np.all((action[:, 1] >= 0) & (action[:, 1] < 2))
    first, second = out[:, :3], out[:, 3:]
    np.testing.assert_allclose(dist.log_prob(out, action), log_prob(first, action[:, 0])
                               + log_prob(second, action[:, 1]), rtol=1e-6)
    np.testing.assert_allclose(dist.entropy(out), entropy(first) + entropy(second),
                               rtol=1e-6)
    np.testing.assert_array_equal(dist.greedy(out), np.stack([first.argmax(-1), second.argmax(-1)], -1))
    spec = _spec(Dials())
    assert spec.action_kind == "multi_discrete" and spec.action_nvec == (3, 2) and spec.num_actions == 5
    assert make_distribution(spec).action_shape == (2,)
    returns = _train(spec, num_updates=15)
    assert returns[:, -3:].mean() > returns[:, :3].mean()
