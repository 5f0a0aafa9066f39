"""The memory estimate: its parts come from the program's own shapes, and it covers XLA's accounting."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import pytest

from pgjax.algo.presets import PRESETS
from pgjax.running import footprint, grid, memory, sweep

from .conftest import small_config
from .custom import make_long_cartpole

# The estimate of a chunk (runs x run_bytes + devices x device_bytes) lies between XLA's own
# figure for the compiled segment (arguments, outputs and temporaries) and this many times it.
XLA_FACTOR = 4


def test_tree_bytes_counts_keys_as_their_key_data():
    tree = {"key": jax.random.split(jax.random.key(0), 3), "x": jnp.zeros((3, 2)), "flag": jnp.bool_(True)}
    assert footprint.tree_bytes(tree) == 3 * 2 * 4 + 3 * 2 * 4 + 1
    assert footprint.tree_bytes(jax.eval_shape(lambda: tree)) == footprint.tree_bytes(tree)


def test_parts_follow_the_environment_and_the_network_without_recounting():
    static = small_config().static  # CartPole-v1: T = 500 steps, obs [4], 2 actions; E = 4, hidden (16,)
    shapes = memory.run_shapes(static)
    steps = 500 * 4
    # obs f32 [T, E, 4], action i32, reward f32, valid bool [T, E]; truncated bool [E]; loop_steps i32
    assert shapes.trajectory == steps * (16 + 4 + 4 + 1) + 4 + 4
    assert shapes.step_arrays == footprint.STEP_ARRAYS * steps * 4
    params = (4 + 1) * 16 + (16 + 1) * 2
    assert shapes.gradients == 4 * params
    wider = memory.run_shapes(dataclasses.replace(static, hidden=(32,)))
    added = 4 * 16 * (4 + 1 + 2)  # 16 more hidden units, each with 4 inputs, a bias and 2 outputs
    assert wider.gradients - shapes.gradients == added
    assert wider.state - shapes.state == 3 * added  # parameters and Adam's two moments
    assert shapes.activations_per_step < wider.activations_per_step
    more_episodes = memory.run_shapes(dataclasses.replace(static, episodes_per_update=5))
    assert more_episodes.metrics - shapes.metrics == 4  # one more float32 episode return per update
    assert more_episodes.trajectory - shapes.trajectory == (shapes.trajectory - 4) // 4


def test_a_value_baseline_and_gaussian_actions_are_in_the_shapes():
    base = PRESETS["default"]
    static = dataclasses.replace(base.static, env="Pendulum-v1", hidden=(8,), episodes_per_update=2,
                                 baseline="value", returns="reward_to_go")
    shapes = memory.run_shapes(static)
    steps = 200 * 2  # Pendulum-v1: T = 200, obs [3], actions float32 [1]
    # obs, action, reward, valid [T, E]; truncated [E]; loop_steps; last_obs f32 [E, 3] (for bootstrapping)
    assert shapes.trajectory == steps * (12 + 4 + 4 + 1) + 2 + 4 + 2 * 12
    policy = (3 + 1) * 8 + (8 + 1) * 1 + 1  # and the Gaussian's log std
    value = (3 + 1) * 8 + (8 + 1) * 1
    assert shapes.gradients == 4 * (policy + value)
    assert shapes.step_arrays == (footprint.STEP_ARRAYS + footprint.VALUE_STEP_ARRAYS) * steps * 4


def test_estimate_of_a_cnn_covers_what_xla_allocates():
    config = small_config(env="Breakout-MinAtar", network="cnn", conv=(4,), hidden=(8,), episodes_per_update=2,
                          num_updates=1)
    _, info = sweep.train_sweep(grid.compile_groups(grid.expand_grid(config)), 2, 0)
    (estimate,) = info["memory_estimate"]
    planned = estimate["chunk_size"] * estimate["run_bytes"] + info["devices"] * estimate["device_bytes"]
    assert info["memory_bytes"] <= planned <= XLA_FACTOR * info["memory_bytes"], (info["memory_bytes"], planned)


def test_the_default_command_trains_in_one_chunk():
    groups = grid.compile_groups(grid.expand_grid(PRESETS["default"]))
    chunks, (estimate,) = sweep.plan_chunks(groups, 64, jax.devices(), max_parallel=None)
    assert [(c.positions.size, c.size) for c in chunks] == [(64, 64)] and estimate["chunk_size"] == 64


class _Accelerator:
    platform = "gpu"
    process_index = 0

    def __init__(self, limit: int, in_use: int):
        self.stats = {"bytes_limit": limit, "bytes_in_use": in_use}

    def memory_stats(self):
        return self.stats


def test_available_memory_is_the_devices_own_or_the_hosts(monkeypatch):
    assert memory.available_bytes([_Accelerator(1000, 300), _Accelerator(1000, 100)]) == 1600
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 12345)
    assert memory.available_bytes(jax.devices()) == 12345  # CPU devices share one host's memory


def test_chunk_size_follows_the_estimate():
    static = small_config().static
    per_run, per_device = memory.run_bytes(static, 4), memory.device_bytes(static, 1024)
    available = int((10 * per_run + 2 * per_device) / footprint.USABLE_FRACTION)
    assert memory.chunk_size(100, per_run, per_device, 2, available) == 10
    with pytest.raises(ValueError, match="set --max-parallel 10 or less"):
        memory.chunk_size(100, per_run, per_device, 2, available, max_parallel=20)


@pytest.mark.parametrize("env", ["CartPole-v1", "Acrobot-v1"])
def test_declared_metrics_shapes_are_those_an_update_returns(env):
    """`Metrics.shapes` (what the estimate reads instead of tracing an update) matches a traced update."""
    from pgjax.algo.presets import preset_config
    from pgjax.algo.trainer import Metrics, make_trainer

    config = preset_config("default", env)
    trainer = make_trainer(config)
    hparams = config.hparams.as_arrays()
    state = jax.eval_shape(trainer.init, jax.random.key(0), hparams)
    _, traced = jax.eval_shape(trainer.update, state, hparams)
    declared = Metrics.shapes(config.static.episodes_per_update)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), traced) == jax.tree.map(lambda x: (x.shape, x.dtype), declared)


# --- long episodes: advice that fits, and the check before make_train ------------------------------------------


def test_the_advice_names_what_fits_and_following_it_fits(monkeypatch):
    from pgjax.algo.envs import make_env
    from pgjax.algo.trainer import Metrics, make_trainer

    config = dataclasses.replace(PRESETS["default"], static=dataclasses.replace(
        PRESETS["default"].static, episodes_per_update=16, num_updates=4))
    spec = make_env(make_long_cartpole())
    trainer = make_trainer(config, spec)
    state = jax.eval_shape(trainer.init, jax.random.key(0), config.hparams.as_arrays())
    shapes = footprint.measure_run(state, Metrics.shapes(16), spec, config)
    per_run = footprint.run_total(shapes, 4)
    assert footprint.growing_total(shapes) > 0.9 * per_run  # the trajectory buffers are the run
    budget = 0.25 * (per_run + footprint.block_total(shapes))
    advice = footprint.fitting_advice("too big", shapes, per_run, budget, spec.max_steps, 16)
    assert advice.startswith("too big; each of these would fit: ") and "--max-episode-steps" in advice
    cap = int(advice.split("--max-episode-steps ")[1].split()[0].replace(",", ""))
    capped = make_env(make_long_cartpole(), max_episode_steps=cap)
    capped_shapes = footprint.measure_run(state, Metrics.shapes(16), capped, config)
    assert footprint.run_total(capped_shapes, 4) + footprint.block_total(capped_shapes) <= budget

    monkeypatch.setattr(footprint, "free_bytes", lambda device: int(2 * budget))  # half of it is planned for
    with pytest.raises(ValueError, match=r"make_train: one run of .* needs about .*max_episode_steps=\d+"):
        footprint.check_train(config, make_long_cartpole())
    footprint.check_train(config, (make_long_cartpole()[0], make_long_cartpole(cap)[1]))  # within the advice's cap


def test_the_plan_line_gives_the_padding_of_large_buffers_under_the_initial_policy(tmp_path, capsys):
    from pgjax.commands.train import main

    # 8 runs x 16 episodes x 10,000 steps: buffers of about 80 MiB, over memory.PADDING_SHOWN_FROM_BYTES
    assert main(["--env", "tests.custom:make_long_cartpole", "--num-seeds", "8", "--episodes-per-update", "16",
                 "--num-updates", "1", "--out", str(tmp_path / "run")]) == 0
    plan = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("plan:"))
    shown = re.search(r"trajectory buffers, ([\d.]+)% of them padding under the initial policy", plan)
    assert shown, plan
    # CartPole's first episodes last tens of steps, not thousands
    config = dataclasses.replace(PRESETS["default"], static=dataclasses.replace(
        PRESETS["default"].static, env="tests.custom:make_long_cartpole", episodes_per_update=16))
    assert float(shown.group(1)) == round(100 * memory.initial_padding(config), 1) > 99
    short = dataclasses.replace(config, static=dataclasses.replace(config.static, env="CartPole-v1"))
    assert 0.8 < memory.initial_padding(short) < 1  # a 500-step limit: less of it is padding


def test_one_run_too_big_for_a_chunk_gets_the_advice_in_the_plan(monkeypatch):
    static = dataclasses.replace(small_config().static, env="Breakout-MinAtar", episodes_per_update=4)
    per_run, per_device = memory.run_bytes(static, 4), memory.device_bytes(static)
    monkeypatch.setattr(memory, "available_bytes", lambda devices: int(1.2 * (per_run + per_device)))
    points = grid.expand_grid(dataclasses.replace(small_config(), static=static), {}, {})
    with pytest.raises(ValueError, match="one run per device needs .* each of these would fit: "):
        sweep.plan_chunks(grid.compile_groups(points), 1, jax.devices()[:1], None, segment_updates=4)
