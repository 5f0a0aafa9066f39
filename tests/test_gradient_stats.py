"""`--gradient-stats`: the per-update statistics of the policy-gradient estimator while training.

Off, the state and metrics hold the leaves they held before the setting existed; on, training is bitwise the same
and the statistics are `pgjax.algo.gradients.estimator_statistics` of the update's own per-episode estimates, and
the cosine that of consecutive updates' gradients. They resume bitwise and reach metrics.npz, the curves,
runs.csv and `pgjax.plot`.
"""

from __future__ import annotations

import dataclasses
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax.algo.config import FastPaths
from pgjax.algo.gradients import episode_gradients, estimator_statistics, sliced_episode_gradients
from pgjax.algo.pieces import choose_pieces
from pgjax.algo.policy import make_apply_fn, make_policy
from pgjax.algo.trainer import GRADIENT_STATS, Metrics, make_trainer, run_batch_updates
from pgjax.commands import plot
from pgjax.commands.plot import Metric
from pgjax.commands.train import main
from pgjax.results import plots
from pgjax.running import grid, memory, sweep

from .conftest import StopAt, small_config

# the Metrics fields of pgjax before --gradient-stats (metrics.npz's arrays per group, a checkpoint's metrics)
METRICS_BEFORE = ("episode_return", "episode_length", "episodes", "env_steps", "loss", "entropy", "grad_norm",
                  "episode_returns", "loop_steps", "diverged", "value_loss", "explained_variance")
RUNS = 3


def _on(config):
    return dataclasses.replace(config, static=dataclasses.replace(config.static, gradient_stats=True))


def _train(config, fast=None):
    """RUNS runs of `config` over all its updates: (state, metrics), metrics leaves [RUNS, U, ...]."""
    trainer = make_trainer(config, fast=fast)
    hparams = config.hparams.broadcast(RUNS)
    state = jax.vmap(trainer.init)(jax.random.split(jax.random.key(3), RUNS), hparams)
    return jax.jit(lambda s, h: run_batch_updates(trainer, s, h, trainer.num_updates))(state, hparams)


@pytest.fixture(scope="module")
def off_and_on():
    config = small_config(num_updates=5)
    return _train(config), _train(_on(config))


def test_off_the_state_and_metrics_hold_the_leaves_they_held_before(off_and_on):
    (state, metrics), _ = off_and_on
    assert Metrics.names() == METRICS_BEFORE
    assert all(getattr(metrics, name) is None for name in GRADIENT_STATS) and state.previous_gradient is None
    assert len(jax.tree.leaves(metrics)) == len(METRICS_BEFORE)
    assert len(jax.tree.leaves(Metrics.shapes(4))) == len(METRICS_BEFORE)
    assert len(jax.tree.leaves(Metrics.shapes(4, gradient_stats=True))) == len(METRICS_BEFORE) + 3


def test_on_training_is_bitwise_the_same_and_the_statistics_are_there(off_and_on):
    (state_off, metrics_off), (state_on, metrics_on) = off_and_on
    same = jax.tree.map(np.array_equal, (state_off.params, state_off.opt_state),
                        (state_on.params, state_on.opt_state))
    assert all(jax.tree.leaves(same))
    for name in METRICS_BEFORE:
        np.testing.assert_array_equal(getattr(metrics_on, name), getattr(metrics_off, name), err_msg=name)
    assert np.all(np.isnan(metrics_on.gradient_cosine[:, 0]))  # no previous update
    # an update whose episodes all have one length gets weights 0 from batch_norm (every return the same): a
    # zero gradient, whose SNR (0 / 0) and cosines are nan
    moved = np.asarray(metrics_on.grad_norm) > 0
    assert moved.sum() >= RUNS * 5 - 2
    for name in GRADIENT_STATS:
        values = np.asarray(getattr(metrics_on, name))
        assert values.shape == (RUNS, 5) and values.dtype == np.float32
        assert np.all(np.isfinite(values[:, 1:][moved[:, 1:] & moved[:, :-1]]))
    assert np.all(metrics_on.gradient_variance[moved] > 0) and np.all(metrics_on.gradient_snr[moved] > 0)
    assert np.all(np.abs(metrics_on.gradient_cosine[:, 1:][moved[:, 1:] & moved[:, :-1]]) <= 1 + 1e-6)


@pytest.mark.parametrize("fast", [FastPaths.reference(), FastPaths()], ids=["reference", "default"])
def test_the_statistics_are_those_of_the_updates_own_episodes(fast):
    """Two updates of one run: each update's variance and SNR are `estimator_statistics` of the per-episode
    estimates (`episode_gradients` of the plain network) on the update's own episodes and weights (its rollout
    and weighting, of the same key), and the second update's cosine is that between the two updates' gradients
    (each the mean of its estimates)."""
    config = _on(small_config(num_updates=2))
    config = dataclasses.replace(config, hparams=config.hparams.replace(entropy_coef=0.01))
    hparams = config.hparams.as_arrays()
    trainer = make_trainer(config, fast=fast)
    pieces = choose_pieces(trainer.spec, config, fast)
    apply_fn = make_apply_fn(make_policy(trainer.spec, config))  # the plain network, whatever the path
    state = jax.jit(trainer.init)(jax.random.key(1), hparams)
    update, collect, weights_of = jax.jit(trainer.update), jax.jit(pieces.collect), jax.jit(pieces.weighting.weights)
    per_episode = jax.jit(lambda params, traj, weights: episode_gradients(apply_fn, pieces.dist, params, traj, weights,
                                                                          hparams.entropy_coef))
    gradients = []
    for _ in range(2):
        traj = collect(state.params, jax.random.split(state.key)[1])  # the episodes of the update
        weights = weights_of(state.value_params, traj, hparams)
        grads = per_episode(state.params, traj, weights)
        expected = estimator_statistics(grads)
        state, metrics = update(state, hparams)
        np.testing.assert_allclose(float(metrics.gradient_variance), float(expected.variance), rtol=1e-4)
        np.testing.assert_allclose(float(metrics.gradient_snr), float(expected.snr), rtol=1e-4)
        np.testing.assert_allclose(state.previous_gradient, grads.mean(axis=0), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(np.linalg.norm(state.previous_gradient), metrics.grad_norm, rtol=1e-6)
        gradients.append(np.asarray(grads.mean(axis=0), np.float64))
    cosine = gradients[0] @ gradients[1] / (np.linalg.norm(gradients[0]) * np.linalg.norm(gradients[1]))
    np.testing.assert_allclose(float(metrics.gradient_cosine), cosine, rtol=1e-4, atol=1e-6)


def test_a_stopped_sweep_resumes_bitwise_with_the_statistics_and_its_estimate_covers_xla(tmp_path):
    """4 runs over 2 devices in chunks of 2, stopped mid-chunk and resumed from the checkpoint: the runs, the
    previous gradient and the statistics are bitwise the uninterrupted ones; the memory plan covers XLA's."""
    from .test_memory import XLA_FACTOR

    def groups():
        return grid.compile_groups(grid.expand_grid(_on(small_config(num_updates=6))))

    whole, info = sweep.train_sweep(groups(), 4, 0, segment_updates=4, max_parallel=2)
    (estimate,) = info["memory_estimate"]
    assert estimate["parts"]["episode_gradients"] > 0
    planned = estimate["chunk_size"] * estimate["run_bytes"] + info["devices"] * estimate["device_bytes"]
    assert info["memory_bytes"] <= planned <= XLA_FACTOR * info["memory_bytes"], (info["memory_bytes"], planned)
    with pytest.raises(sweep.Interrupted):
        sweep.train_sweep(groups(), 4, 0, segment_updates=4, max_parallel=2, run_dir=tmp_path, checkpoint_every=3,
                          should_stop=StopAt(3))
    resumed, info = sweep.train_sweep(groups(), 4, 0, segment_updates=4, max_parallel=2, run_dir=tmp_path)
    assert info["resumed_updates"] > 0
    assert whole[0].state.previous_gradient.shape[0] == 4
    same = jax.tree.map(lambda a, b: np.array_equal(a, b, equal_nan=True), (whole[0].state, whole[0].metrics),
                        (resumed[0].state, resumed[0].metrics))
    assert all(jax.tree.leaves(same))


def test_the_memory_estimate_counts_the_episode_gradients_only_when_on():
    static = small_config().static
    assert memory.run_shapes(static).episode_gradients == 0
    on = memory.run_shapes(dataclasses.replace(static, gradient_stats=True))
    assert on.episode_gradients > 0
    num_params = (4 * 16 + 16) + (16 * 2 + 2)  # CartPole's MLP of width 16
    # and the previous gradient in the state, 3 float32 metrics per update (2 copies of each)
    assert memory.run_bytes(dataclasses.replace(static, gradient_stats=True), 4) == \
        memory.run_bytes(static, 4) + on.episode_gradients + 2 * num_params * 4 + 2 * 4 * 3 * 4


SMALL = ["--num-seeds", "2", "--seed", "5", "--num-updates", "4", "--episodes-per-update", "2", "--hidden", "8",
         "--quiet"]


@pytest.fixture(scope="module")
def with_stats(tmp_path_factory):
    """A grid of two learning rates, halved after 2 updates and its best confirmed, with --gradient-stats."""
    out = tmp_path_factory.mktemp("stats") / "out"
    assert main([*SMALL, "--gradient-stats", "--lr", "0.01", "0.03", "--halving", "2", "--rungs", "2",
                 "--confirm-seeds", "2", "--out", str(out)]) == 0
    return out


def test_the_command_writes_the_statistics_to_metrics_curves_and_runs_csv(with_stats):
    runs, curves = pgjax.load_results(with_stats)
    for name in GRADIENT_STATS:
        assert curves[name].dtype == np.float32
        first = curves[name][curves["update"] == 1]
        assert np.all(np.isnan(first)) if name == "gradient_cosine" else np.all(first > 0)
        assert all(f"{name}" in pgjax.load_group_metrics(with_stats, g) for g in range(2))
    assert runs["gradient_stats"].all()
    assert {"gradient_variance_median", "gradient_snr_median", "gradient_cosine_mean"} <= set(runs.columns)
    assert np.all(runs["gradient_snr_median"] > 0)
    summary = pgjax.load_summary(with_stats)
    assert all(run["hyperparameters"]["gradient_stats"] is True for run in summary["runs"])
    assert {"gradient_variance_median", "gradient_snr_median", "gradient_cosine_mean"} <= set(summary["runs"][0])


def test_the_plot_draws_a_statistic_and_names_a_folder_without_them(with_stats, tmp_path, capsys):
    assert plot.main([str(with_stats), "--metric", "gradient_snr"]) == 0
    assert (with_stats / "learning_curves_gradient_snr.png").stat().st_size > 0
    assert plot.main([str(with_stats), "--metric", "gradient_cosine", "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0
    out = tmp_path / "off"
    assert main([*SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    assert plot.main([str(out), "--metric", "gradient_variance"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no per-update gradient_variance: train with --gradient-stats" in err and len(err.splitlines()) == 1
    _, curves = pgjax.load_results(out)
    assert not set(GRADIENT_STATS) & set(curves.columns)
    assert set(pgjax.load_group_metrics(out, 0)) == {*METRICS_BEFORE, "seeds"}
    assert set(typing.get_args(Metric)) == set(plots.METRICS)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"--episodes-per-update": "1"}, "--gradient-stats needs --episodes-per-update >= 2"),
        ({"--network": "gru"}, "--gradient-stats computes per-episode gradients of feed-forward networks only"),
        ({"--gradient-stats": None}, "--gradient-stats is given twice"),
    ],
)
def test_what_cannot_work_is_refused_in_one_line(changes, message, tmp_path, capsys):
    argv = list(SMALL)
    for flag, value in changes.items():
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag] if value is None else [flag, value]
    assert main([*argv, "--gradient-stats", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_a_grid_does_not_vary_it():
    with pytest.raises(ValueError, match="gradient_stats takes one value for every grid point"):
        grid.expand_grid(small_config(), {"gradient_stats": [False, True]})
    (point,) = grid.expand_grid(small_config(), {"gradient_stats": [True]})
    assert point.config.static.gradient_stats


def test_a_recurrent_network_is_refused_by_validation_and_when_built():
    """`make_trainer` checks no config (a registered recurrent network passes validation): it refuses itself."""
    config = _on(small_config(network="lstm"))
    with pytest.raises(ValueError, match="feed-forward networks only"):
        config.static.validate()
    with pytest.raises(ValueError, match="feed-forward networks only"):
        make_trainer(config)


def test_the_settings_line_shows_the_switch_alone():
    from pgjax.commands.options import settings_line

    assert "--gradient-stats" not in settings_line(small_config(), False)
    line = settings_line(_on(small_config()), False)
    assert "--gradient-stats" in line and "--gradient-stats True" not in line


def test_the_cosine_with_a_zero_gradient_is_nan_and_the_variance_is_the_estimators():
    from pgjax.algo.trainer import gradient_statistics

    episodes = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    stats = gradient_statistics(episodes, episodes.mean(axis=0), jnp.zeros(2))
    assert np.isnan(stats["gradient_cosine"])
    np.testing.assert_allclose(stats["gradient_variance"], estimator_statistics(episodes).variance)
    np.testing.assert_allclose(gradient_statistics(episodes, jnp.ones(2), -jnp.ones(2))["gradient_cosine"], -1.0,
                               rtol=1e-6)


@pytest.mark.parametrize("slice_steps", [7, 16, 50, 200])
def test_the_sliced_estimates_are_the_whole_episodes(slice_steps):
    """`sliced_episode_gradients` (what training takes) equals the reference `episode_gradients`, for slices that
    divide the step limit T = 50 or not (the last slice overlapping) and one longer than T."""
    config = small_config(max_episode_steps=50, episodes_per_update=6)
    config = dataclasses.replace(config, hparams=config.hparams.replace(entropy_coef=0.01))
    hparams = config.hparams.as_arrays()
    trainer = make_trainer(config, fast=FastPaths.reference())
    pieces = choose_pieces(trainer.spec, config, FastPaths.reference())
    state = trainer.init(jax.random.key(2), hparams)
    traj = pieces.collect(state.params, jax.random.key(4))
    weights = pieces.weighting.weights(state.value_params, traj, hparams)
    apply_fn = make_apply_fn(pieces.policy)
    whole = episode_gradients(apply_fn, pieces.dist, state.params, traj, weights, hparams.entropy_coef)
    sliced = jax.jit(sliced_episode_gradients, static_argnums=(0, 1, 6, 7))(
        apply_fn, pieces.dist, state.params, traj, weights, hparams.entropy_coef, None, slice_steps)
    assert int(traj.lengths.max()) > 7 and int(traj.lengths.min()) < int(traj.lengths.max())
    np.testing.assert_allclose(sliced, whole, rtol=1e-5, atol=1e-6)
