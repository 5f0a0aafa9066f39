"""Every environment pgjax serves trains a few updates; unsupported ones fail with a clear error; presets per env."""

from __future__ import annotations

import dataclasses
import json

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from pgjax.algo.config import Config, StaticConfig
from pgjax.algo.envs import make_env, space_kind
from pgjax.algo.policy import make_policy
from pgjax.algo.presets import ENV_PRESETS, PRESETS, preset_config
from pgjax.algo.trainer import make_train
from pgjax.algo.validation import validate_config
from pgjax.commands import evaluate
from pgjax.commands.train import main as train_main
from pgjax.results import evaluation
from pgjax.running.run_folder import loading

LISTED = [
    "CartPole-v1", "Pendulum-v1", "MountainCarContinuous-v0", "Acrobot-v1", "MountainCar-v0",
    "Breakout-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar", "Seaquest-MinAtar",
    "Catch-bsuite",
]


def _tiny(config: Config, **static) -> Config:
    """The environment's preset with its algorithm, shrunk: 2 updates x 2 episodes, 8 hidden units."""
    fields = {"hidden": (8,), "episodes_per_update": 2, "num_updates": 2, **static}
    return dataclasses.replace(config, static=dataclasses.replace(config.static, **fields))


@pytest.mark.parametrize("env", LISTED)
def test_every_listed_environment_trains_a_few_updates(env, keys8):
    config = _tiny(preset_config("default", env))
    spec = make_env(env)
    state, metrics = jax.jit(jax.vmap(make_train(config)))(keys8[:2])
    m = jax.tree.map(np.asarray, metrics)
    assert m.episode_returns.shape == (2, 2, 2)
    assert np.all(m.env_steps[:, -1] > 0) and np.all(m.env_steps[:, -1] <= 4 * spec.max_steps)
    for name in ("loss", "entropy", "grad_norm", "value_loss", "explained_variance"):
        assert np.all(np.isfinite(getattr(m, name))), name
    assert not m.diverged.any()
    assert np.all(np.isfinite(m.episode_returns))
    if spec.action_kind == "continuous":
        assert state.params["log_std"].shape == (2, spec.num_actions)


@pytest.mark.parametrize("env", ["Breakout-MinAtar", "Catch-bsuite"])  # [10, 10, 4] and [10, 5] (one channel)
def test_the_cnn_trains_on_image_observations(env, keys8):
    config = _tiny(preset_config("default", env), network="cnn", conv=(4,), hidden=(8,))
    state, metrics = jax.jit(jax.vmap(make_train(config)))(keys8[:2])
    assert "TorchConv_0" in state.params and np.all(np.isfinite(np.asarray(metrics.loss)))


def test_the_policy_follows_the_action_space():
    assert make_env("CartPole-v1").action_kind == "discrete"
    pendulum = make_env("Pendulum-v1")
    assert pendulum.action_kind == "continuous" and pendulum.num_actions == 1
    assert make_policy(pendulum, preset_config("default", "Pendulum-v1")).gaussian
    breakout = make_env("Breakout-MinAtar")
    assert breakout.obs_shape == (10, 10, 4) and breakout.obs_dtype == "uint8" and breakout.num_actions == 3


class _FakeEnv:
    """A gymnax-like environment with configurable spaces (nothing else is called before the check)."""

    def __init__(self, obs_space, action_space):
        self._obs, self._action = obs_space, action_space

    def observation_space(self, params):
        return self._obs

    def action_space(self, params):
        return self._action


@dataclasses.dataclass
class _FakeParams:
    max_steps_in_episode: int = 10


@pytest.mark.parametrize(
    "obs_space, action_space, message",
    [
        (spaces.Box(0, 1, (4,)), spaces.Tuple([spaces.Discrete(2), spaces.Discrete(2)]), "Tuple action space"),
        (spaces.Box(0, 1, (4,)), spaces.Box(-jnp.inf, jnp.inf, (2,)), "unbounded Box action space"),
        (spaces.Box(0, 1, (4,)), spaces.Box(-1, 1, (2, 2)), "Box action space of shape (2, 2)"),
        (spaces.Box(0, 1, (2, 3, 4, 5)), spaces.Discrete(2), "observations of shape (2, 3, 4, 5)"),
        (spaces.Dict({}), spaces.Discrete(2), "Dict observation space that holds no number"),
        (spaces.Tuple([object()]), spaces.Discrete(2), "has a object observation space; pgjax's networks take a Box"),
    ],
)
def test_unsupported_spaces_are_named(obs_space, action_space, message, monkeypatch):
    monkeypatch.setattr(gymnax, "registered_envs", [*gymnax.registered_envs, "Fake-v0"])
    monkeypatch.setattr(gymnax, "make", lambda env_id: (_FakeEnv(obs_space, action_space), _FakeParams()))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_env("Fake-v0")


class _LookAlikeBox:
    """A Box of another package's own class (as Craftax declares them): gymnax's attributes, not its class."""

    def __init__(self, low, high, shape, dtype=jnp.float32):
        self.low, self.high, self.shape, self.dtype = low, high, shape, dtype


class _LookAlikeDiscrete:
    def __init__(self, n):
        self.n, self.shape, self.dtype = n, (), jnp.int32


class _LookAlikeMultiDiscrete:  # as gymnasium's MultiDiscrete: a vector of sizes
    def __init__(self, nvec):
        self.nvec, self.shape, self.dtype = nvec, (len(nvec),), jnp.int32


def test_spaces_are_recognised_by_their_attributes():
    assert space_kind(spaces.Box(0, 1, (4,))) == space_kind(_LookAlikeBox(0, 1, (4,))) == "box"
    assert space_kind(spaces.Discrete(3)) == space_kind(_LookAlikeDiscrete(3)) == "discrete"
    assert space_kind(spaces.Tuple([spaces.Discrete(2)])) == "tuple"
    assert space_kind(spaces.Dict({"a": spaces.Box(0, 1, (2,))})) == "dict"
    assert space_kind(_LookAlikeMultiDiscrete((2, 3))) == "multi_discrete"
    assert space_kind(object()) is None


@pytest.mark.parametrize("env_id, obs_space, action_space, kind", [
    ("CartPole-v1", _LookAlikeBox(-5.0, 5.0, (4,)), _LookAlikeDiscrete(2), "discrete"),
    ("Pendulum-v1", _LookAlikeBox(-8.0, 8.0, (3,)), _LookAlikeBox(-2.0, 2.0, (1,)), "continuous")])
def test_look_alike_spaces_serve_like_gymnax_s(env_id, obs_space, action_space, kind, monkeypatch):
    env, params = gymnax.make(env_id)
    env.observation_space = lambda params: obs_space
    env.action_space = lambda params: action_space
    make = gymnax.make
    monkeypatch.setattr(gymnax, "registered_envs", [*gymnax.registered_envs, "LookAlike-v0"])
    monkeypatch.setattr(gymnax, "make", lambda name: (env, params) if name == "LookAlike-v0" else make(name))
    spec, plain = make_env("LookAlike-v0"), make_env(env_id)
    assert spec.action_kind == kind
    assert (spec.obs_shape, spec.num_actions, spec.action_low, spec.action_high) == (
        plain.obs_shape, plain.num_actions, plain.action_low, plain.action_high)


def test_unsupported_registered_environment_and_network():
    frozen = make_env("FrozenLake-misc")  # Discrete observations: served one-hot (pgjax.algo.envs)
    assert frozen.obs_shape == (16,) and frozen.obs_dtype == "uint8" and frozen.encode_obs is not None
    with pytest.raises(ValueError, match="network 'cnn' needs image observations"):
        make_policy(make_env("Acrobot-v1"), Config(StaticConfig(env="Acrobot-v1", network="cnn")))


def test_default_preset_follows_the_environment():
    assert preset_config("default") is PRESETS["default"]
    assert preset_config("default", "CartPole-v1") is PRESETS["default"]
    assert preset_config("default", "Pendulum-v1") is ENV_PRESETS["Pendulum-v1"]
    assert all(config.static.env == env for env, config in ENV_PRESETS.items())
    tutorial = preset_config("seed-a", "Acrobot-v1")  # a tutorial keeps its algorithm on another env
    assert tutorial.static == dataclasses.replace(PRESETS["seed-a"].static, env="Acrobot-v1")
    other = preset_config("default", "DeepSea-bsuite")  # no preset of its own: CartPole's default
    assert other.static == dataclasses.replace(PRESETS["default"].static, env="DeepSea-bsuite")
    for config in ENV_PRESETS.values():
        validate_config(config)


def test_cli_trains_a_gaussian_policy_that_loads_and_evaluates(tmp_path):
    out = tmp_path / "pendulum"
    argv = ["--env", "Pendulum-v1", "--num-seeds", "2", "--num-updates", "3", "--hidden", "8",
            "--squash", "clip", "tanh", "--init-log-std", "-0.5", "--out", str(out)]
    assert train_main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "Pendulum-v1" and summary["num_runs"] == 4 and summary["compile_groups"] == 2
    hp = summary["runs"][3]["hyperparameters"]
    assert hp["squash"] == "tanh" and hp["baseline"] == "value_norm" and hp["init_log_std"] == -0.5
    assert loading.load_group_metrics(out, 1)["value_loss"].shape == (2, 3)
    act = evaluation.load_policy(out, run=3)
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    actions = act(obs)
    assert actions.shape == (16, 1) and actions.dtype == np.float32 and np.all(np.abs(actions) <= 2.0)
    assert act(obs[0]).shape == (1,)
    sampled = evaluation.load_policy(out, run=3, greedy=False, seed=1)(np.tile(obs[0], (500, 1)))
    assert np.all(np.abs(sampled) <= 2.0) and sampled.std() > 0
    assert evaluate.main([str(out), "--episodes", "2"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert all(-2000 < r["greedy_mean"] <= 0 for r in result["runs"])
