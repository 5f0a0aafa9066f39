"""Issue 40's environment flags honoured everywhere an environment is built, the random policy's reference, the
whole-run health checks, returns printed at their scale's precision, bench's environment limit and its help."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rich.console import Console

from pgjax.algo.config import StaticConfig
from pgjax.algo.envs import env_for, make_env
from pgjax.algo.presets import PRESETS
from pgjax.algo.trainer import make_train
from pgjax.commands.compare import main as compare_main
from pgjax.commands.evaluate import main as evaluate_main
from pgjax.commands.plot import main as plot_main
from pgjax.commands.train import main as train_main
from pgjax.results import health, tables, throughput
from pgjax.results.random_policy import RandomScore, random_policy_of, random_policy_return
from pgjax.running.run_folder.files import SUMMARY_FILE
from tests.flag_envs import ConstantReward

UNLIMITED = "tests.flag_envs:make_unlimited_chain"
CHAIN = "tests.custom:Chain"
TINY = ["--num-seeds", "2", "--num-updates", "3", "--episodes-per-update", "4", "--hidden", "8", "--lr", "0.01",
        "0.03", "--quiet"]


@pytest.fixture(scope="module")
def unlimited(tmp_path_factory) -> Path:
    """A run of a factory with a required argument (--env-kwargs) whose environment has no step limit of its own
    (--max-episode-steps): the network check, the memory estimate, the plan and the random policy all build it."""
    out = tmp_path_factory.mktemp("flags") / "unlimited"
    argv = ["--env", UNLIMITED, "--env-kwargs", "length=5", "--max-episode-steps", "6", *TINY, "--out", str(out)]
    assert train_main(argv) == 0
    return out


def _summary(folder: Path) -> dict:
    return json.loads((folder / SUMMARY_FILE).read_text())


def test_the_flags_build_the_environment_of_a_factory_without_a_step_limit():
    with pytest.raises(ValueError, match="missing 1 required positional argument"):
        make_env(UNLIMITED)
    with pytest.raises(ValueError, match="declares no step limit"):
        make_env(UNLIMITED, env_kwargs=["length=5"])
    static = StaticConfig(env=UNLIMITED, env_kwargs=("length=5",), max_episode_steps=6)
    spec = env_for(static)
    assert spec.max_steps == 6 and spec.obs_shape == (5,)


def test_train_records_the_random_policy_of_its_own_environment(unlimited):
    summary = _summary(unlimited)
    capped = random_policy_return(make_env(UNLIMITED, env_kwargs=["length=5"], max_episode_steps=6))
    assert summary["random_policy"] == capped.to_dict()
    assert all(group["random_policy"] == capped.to_dict() for group in summary["groups"])
    # 4 steps right of 6 reach the end: a random walk does within 6 steps (0.17 of the time) less often than
    # within 12 (the same chain capped at 12 steps)
    longer = random_policy_return(make_env(UNLIMITED, env_kwargs=["length=5"], max_episode_steps=12))
    assert 0.05 < capped.mean < longer.mean - 5 * longer.stderr


def test_evaluate_plot_compare_and_resume_take_the_run_s_flags(unlimited, tmp_path, capsys):
    assert evaluate_main([str(unlimited), "--env", UNLIMITED, "--episodes", "4"]) == 0
    assert "mean return over 4 fresh episodes" in capsys.readouterr().out
    assert plot_main([str(unlimited), "--out", str(tmp_path / "curves.png")]) == 0
    # a second environment (another factory, its own arguments and cap), the two aggregated: the random policy
    # of each is its run's, with its --env-kwargs and --max-episode-steps
    other = tmp_path / "chain"
    assert train_main(["--env", CHAIN, "--env-kwargs", "length=3", "--max-episode-steps", "4", *TINY,
                       "--out", str(other)]) == 0
    out = tmp_path / "compared"
    assert compare_main([str(unlimited), str(other), "--env", UNLIMITED, CHAIN, "--out", str(out),
                         "--resamples", "200"]) == 0
    environments = json.loads((out / "comparison.json").read_text())["environments"]
    chain = random_policy_return(make_env(CHAIN, env_kwargs=["length=3"], max_episode_steps=4))
    assert [e["random_score"] for e in environments] == [_summary(unlimited)["random_policy"]["mean"], chain.mean]
    assert environments[1]["env_kwargs"] == ["length=3"] and environments[1]["max_episode_steps"] == 4
    # --resume builds the environment again from the folder's settings
    resumable = tmp_path / "resumable"
    shutil.copytree(unlimited, resumable)
    (resumable / SUMMARY_FILE).unlink()
    assert train_main(["--resume", str(resumable), "--env", UNLIMITED, "--quiet"]) == 0
    assert _summary(resumable)["runs"] == _summary(unlimited)["runs"]


def _tiny(**static):
    config = PRESETS["default"]
    fields = {"hidden": (8,), "episodes_per_update": 4, "num_updates": 2, **static}
    return dataclasses.replace(config, static=dataclasses.replace(config.static, **fields))


@pytest.mark.parametrize("env", [
    pytest.param(lambda: make_env("CartPole-v1").env, id="object"),
    pytest.param(lambda: (make_env("CartPole-v1").env, make_env("CartPole-v1").params), id="pair"),
    pytest.param(lambda: "CartPole-v1", id="id"),
])
def test_make_train_caps_episodes_as_its_config_says(env):
    _, metrics = jax.jit(make_train(_tiny(max_episode_steps=2), env()))(jax.random.key(0))
    assert np.all(np.asarray(metrics.episode_length) == 2)  # a random CartPole episode outlasts 2 steps


def test_make_train_gives_a_named_factory_the_config_s_arguments():
    config = _tiny(env=UNLIMITED, env_kwargs=("length=3",), max_episode_steps=4)
    _, metrics = jax.jit(make_train(config, UNLIMITED))(jax.random.key(0))
    assert np.all(np.asarray(metrics.episode_length) <= 4)


# ---------------------------------------------------------------- the random policy

def test_the_random_policy_samples_every_kind_of_action_uniformly():
    pendulum = random_policy_return(make_env("Pendulum-v1"), episodes=20)  # Box: uniform in [-2, 2]
    assert -1500 < pendulum.mean < -900
    assert random_policy_of(StaticConfig(env="CartPole-v1", max_episode_steps=3), episodes=10).mean == 3.0
    with pytest.raises(ValueError, match="at least 1 episode"):
        random_policy_return(make_env("CartPole-v1"), episodes=0)


@pytest.mark.parametrize("multi", [False, True], ids=["discrete", "multi_discrete"])
def test_the_random_policy_takes_legal_actions_alone(multi):
    from tests.masked import make_doors

    # tests.masked's doors: opening the highest open door earns 1, another open one 0, a closed one -1 and ends
    # the episode; each of 6 steps opens 5 doors at random (door 0 where none is): uniform over the open doors
    # earns 1/#open a step (per entry of the MultiDiscrete action)
    masks = [[(m >> d) & 1 for d in range(5)] for m in range(32)]
    per_step = np.mean([1 / max(sum(mask), 1) for mask in masks])
    score = random_policy_return(make_env(make_doors(5, multi=multi)), episodes=400)
    expected = 6 * per_step * (2 if multi else 1)
    assert abs(score.mean - expected) < 4 * score.stderr, (score, expected)


# ---------------------------------------------------------------- health over the whole run

UPDATES, RANDOM = 200, RandomScore(mean=0.16, stderr=0.01, episodes=1000)


def _returns(*levels: tuple[int, float]) -> np.ndarray:
    """[1, UPDATES] returns: each (from update, level) on from that update."""
    out = np.zeros(UPDATES)
    for start, level in levels:
        out[start:] = level
    return out[None]


def _collapse(returns, entropy, action_kind="discrete"):
    return health.late_collapse(returns, entropy, np.full_like(returns, 16.0), RANDOM, action_kind, 4)


def test_a_solved_run_whose_entropy_fell_is_no_collapse():
    returns, entropy = _returns((0, 22.0), (50, 500.0)), np.linspace(0.69, 0.0, UPDATES)[None]
    cartpole = RandomScore(mean=21.6, stderr=0.35, episodes=1000)
    assert health.late_collapse(returns, entropy, np.full_like(returns, 8.0), cartpole) == []


def test_a_late_collapse_is_named_with_its_run_and_update():
    high = np.full((1, UPDATES), 1.2)
    fell = _collapse(_returns((0, 0.16), (20, 0.9), (120, 0.1)), high)
    assert len(fell) == 1 and fell[0][0] == 0 and fell[0][1] == 121 and "fell from 0.9" in fell[0][2]
    entropy = np.full((1, UPDATES), 1.2)
    entropy[0, 150:] = 0.001  # deterministic from update 151 while the return stays at the random policy's
    deterministic = _collapse(_returns((0, 0.16)), entropy)
    assert deterministic == [(0, 151, "entropy 0.001 nats, return 0.16")]
    assert _collapse(_returns((0, 0.16)), entropy, "continuous") == []  # a Gaussian's entropy is not judged
    assert _collapse(_returns((0, 0.16)), high) == []  # a policy that stays random: not a collapse
    below = _collapse(_returns((0, 0.16), (100, 0.02)), high)
    assert len(below) == 1 and below[0][1] == 101 and "ends at 0.02" in below[0][2]
    line = health.collapse_warning([(3, 120, "its return fell from 0.9 to 0.1")], 0.16)
    assert line.startswith("1 run collapsed during training") and "run 3 at update 120" in line


def test_run_warnings_look_at_the_whole_run_of_every_grid_point():
    spec = make_env("CartPole-v1")
    healthy = SimpleNamespace(episode_length=np.full((2, UPDATES), 20.0), entropy=np.full((2, UPDATES), 0.6),
                              grad_norm=np.ones((2, UPDATES)), episodes=np.full((2, UPDATES), 8),
                              episode_return=np.full((2, UPDATES), 300.0), diverged=np.zeros((2, UPDATES), bool))
    late = SimpleNamespace(**vars(healthy))
    late.episode_return = np.concatenate([np.full((2, 100), 300.0), np.full((2, 100), 9.0)], axis=1)
    cartpole = RandomScore(mean=21.6, stderr=0.35, episodes=1000)
    assert health.run_warnings([healthy, healthy], spec, [cartpole, cartpole]) == []
    lines = health.run_warnings([healthy, late], spec, [cartpole, cartpole])
    assert len(lines) == 1 and "2 runs collapsed" in lines[0] and "run 2 at update" in lines[0]
    assert "run 3 at update" in lines[0]


def test_a_group_at_or_below_the_random_policy_is_named_once():
    groups = [{"index": 0, "statistics": {"iqm": 0.17, "iqm_ci95": [0.1, 0.3]}, "random_policy": RANDOM.to_dict()},
              {"index": 1, "statistics": {"iqm": 0.9, "iqm_ci95": [0.85, 0.95]}, "random_policy": RANDOM.to_dict()},
              {"index": 2, "statistics": {"iqm": 0.05, "iqm_ci95": None}, "random_policy": RANDOM.to_dict()},
              # seeds spread widely (CartPole at --lr 0.3) but the IQM well above the random policy's: not below
              {"index": 3, "statistics": {"iqm": 0.25, "iqm_ci95": [0.0, 0.9]}, "random_policy": RANDOM.to_dict()}]
    line = health.below_random_policy(groups)
    assert "group 0 (IQM 0.17 [0.1, 0.3], random 0.16), group 2 (IQM 0.05, random 0.16);" in line
    assert "group 1" not in line and "group 3" not in line
    assert health.below_random_policy(groups[1:2]) is None
    assert health.below_random_policy([{**groups[0], "stopped_early": True}]) is None  # halving judged it


# ---------------------------------------------------------------- returns at their scale's precision

@pytest.mark.parametrize("values, tell_apart, decimals", [
    ([0.96, 0.955, 0.965], True, 3),  # a 0-1 reward: never "1.0 [1.0, 1.0]"
    ([0.96, 0.96, 0.96], True, 2),
    ([499.8, 498.9, 500.0], True, 1),  # CartPole's as before
    ([499.95, 499.9, 500.0], True, 2),  # told apart
    ([-1234.5, -1200.0], True, 1),
    ([0.9612, 0.9613, 0.5], False, 2),  # a column of runs: the scale alone
    ([0.0, 0.0], True, 1),
    ([1e-9, 2e-9], True, tables.MAX_RETURN_DECIMALS),
])
def test_return_decimals_follow_the_scale_and_tell_the_ends_apart(values, tell_apart, decimals):
    assert tables.return_decimals(values, tell_apart) == decimals


def test_the_train_table_and_evaluate_print_a_0_1_reward_at_its_precision(unlimited, capsys):
    assert tables.format_estimate(0.965, [0.96, 0.97]) == "0.965 [0.960, 0.970]"
    assert tables.format_estimate(0.96, [0.96, 0.96]) == "0.96 [0.96, 0.96]"
    assert tables.format_estimate(0.96, [0.95, 0.97], "95% CI ") == "0.96 (95% CI 0.95 to 0.97)"
    console = Console(file=io.StringIO(), width=400)
    summary = _summary(unlimited)
    tables.print_report(summary, console)
    printed = console.file.getvalue()
    iqm = summary["groups"][0]["statistics"]["iqm"]
    assert tables.format_estimate(iqm, summary["groups"][0]["statistics"]["iqm_ci95"]) in printed
    assert f"random policy: {summary['random_policy']['mean']:.2f} ± " in printed
    from pgjax.commands.evaluate import print_evaluation

    runs = [{"run": 0, "seed": 0, "group": 0, "greedy_mean": 0.96, "sampling_mean": 0.5}]
    aggregate = {"iqm": 0.96, "iqm_ci95": [0.955, 0.965], "mean": 0.96}
    result = {"env": "x", "episodes": 4, "runs": runs,
              "groups": [{"index": 0, "varied": {}, "runs": [0], "greedy": aggregate, "sampling": aggregate,
                          "gymnasium_greedy": None}]}
    print_evaluation(result, console)
    printed = console.file.getvalue()
    assert "│   0.96 │     0.50 │" in printed and "IQM 0.960 (95% CI 0.955 to 0.965), mean 0.960" in printed


# ---------------------------------------------------------------- bench's environment limit

def test_the_environment_limit_keeps_the_dynamics_of_a_constant_reward():
    spec = make_env(ConstantReward())
    keys = jax.random.split(jax.random.key(0), 32)
    compiled = jax.jit(throughput.env_limit_function(spec, 200)).lower(keys).compile()
    assert " dot(" in compiled.as_text()  # the state's matrix product is kept: the result depends on it

    def stepping(keys):  # the environment really stepped: every observation kept
        step = jax.vmap(spec.env.step, in_axes=(0, 0, 0, None))
        _, state = jax.vmap(spec.env.reset, in_axes=(0, None))(keys, spec.params)

        def one(state, key):
            obs, state, *_ = step(jax.random.split(key, keys.shape[0]), state, jnp.zeros(keys.shape[0], jnp.int32),
                                  spec.params)
            return state, obs
        return jax.lax.scan(one, state, jax.random.split(keys[0], 200))[1]

    def best_seconds(fn) -> float:
        fn(keys)
        jax.block_until_ready(fn(keys))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            jax.block_until_ready(fn(keys))
            times.append(time.perf_counter() - start)
        return min(times)

    ratio = best_seconds(jax.jit(stepping)) / best_seconds(compiled)
    assert ratio < 5, ratio  # a limit that dropped the dynamics ran ~4,000 times the real rate here


def test_several_valued_options_show_that_they_take_one_or_more(capsys):
    from pgjax.commands.bench import main as bench_main

    assert bench_main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert "--compile-updates INT..." in shown and "--runs INT..." in shown and "[INT [INT" not in shown
    assert bench_main(["--compile-updates", "--quick"]) == 2
    assert capsys.readouterr().err == "error: --compile-updates expects whole numbers, got none\n"
    assert compare_main(["--help"]) == 0
    assert "--env STR..." in capsys.readouterr().out


# ---------------------------------------------------------------- the "no preset" note for suites

@pytest.fixture
def fake_suite(monkeypatch):
    """A suite "flagtest" registered as `pgjax.algo.suites` registers one: tasks "chain" (no preset) and "tuned"
    (its adapter's PRESETS recommends learning rate 0.05)."""
    import sys
    import types

    from pgjax.algo import suites
    from pgjax.algo.config import Config
    from tests import custom

    adapter = types.ModuleType("pgjax.algo.suites.flagtest_suite")
    adapter.names = lambda: ("chain", "tuned")
    adapter.make = lambda name, pairs: custom.Chain()
    tuned = PRESETS["default"]
    adapter.PRESETS = {"tuned": Config(dataclasses.replace(tuned.static, env="flagtest/tuned"),
                                       dataclasses.replace(tuned.hparams, learning_rate=0.05))}
    monkeypatch.setitem(sys.modules, adapter.__name__, adapter)
    monkeypatch.setitem(suites.SUITES, "flagtest", suites.Suite("flagtest_suite", "json", "", "chain"))


def test_the_no_preset_note_holds_for_suites(fake_suite):
    from pgjax.commands.options import RunOptions
    from pgjax.commands.train import parse_args, preset_note, sweep_of
    from pgjax.running.plan import make_plan

    def note_of(argv: list[str]) -> tuple[str | None, float]:
        sweep = sweep_of(parse_args(argv))
        plan = make_plan(sweep.preset, sweep.points, sweep.stages, RunOptions(num_seeds=2), jax.devices())
        return preset_note(plan, sweep.given), plan.points[0].config.hparams.learning_rate

    note, learning_rate = note_of(["--env", "flagtest/tuned"])  # the suite's own preset, said
    assert learning_rate == 0.05 and note.startswith("flagtest/tuned: preset default is its suite adapter's, "
                                                     "measured for this task (") and "--learning-rate 0.05" in note
    note, learning_rate = note_of(["--env", "flagtest/tuned", "--lr", "0.2"])
    assert learning_rate == 0.2 and "--learning-rate 0.2" in note and "no preset" not in note
    note, learning_rate = note_of(["--env", "flagtest/chain"])
    assert learning_rate == 0.01 and note.startswith("flagtest/chain has no preset of its own: training with "
                                                     "CartPole-v1's default settings and the learning rate measured")
    note, learning_rate = note_of(["--env", "flagtest/chain", "--lr", "0.003"])
    assert learning_rate == 0.003 and "the learning rate measured" not in note and "--learning-rate 0.003" in note
