"""`python -m pgjax.train`: the run folder contract, determinism and bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.policy import MLPPolicy
from pgjax.commands.train import main
from pgjax.running.run_folder import files, loading

SMALL = ["--num-seeds", "3", "--seed", "5", "--num-updates", "4", "--episodes-per-update", "2", "--hidden", "8"]


def small(*changes: str) -> list[str]:
    """SMALL with the single-valued flags in `changes` put in place of its own (a flag may be given once)."""
    argv = list(SMALL)
    for flag, value in zip(changes[::2], changes[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv
RUN_KEYS = {"seed", "group", "hyperparameters", "final_return", "solved", "solved_at_env_steps", "diverged"}
SUMMARY_KEYS = {
    "env", "preset", "num_runs", "num_diverged", "solved_fraction", "final_return_mean", "interval_method",
    "env_steps_total", "wall_seconds", "compile_seconds", "env_steps_per_second", "groups", "ranking", "runs",
    "float_determinants",
}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    dirs = [tmp_path_factory.mktemp("run") / "out" for _ in range(2)]
    for d in dirs:
        assert main([*SMALL, "--lr", "0.02", "--out", str(d)]) == 0
    return dirs


def test_run_folder_holds_the_contract(two_runs):
    out = two_runs[0]
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["env"] == "CartPole-v1" and summary["preset"] == "default" and summary["num_runs"] == 3
    determinants = summary["float_determinants"]
    assert determinants["versions"]["jax"] and determinants["backend"] == "cpu" and determinants["cpu_isa"]
    assert [r["seed"] for r in summary["runs"]] == [5, 6, 7]
    for run in summary["runs"]:
        assert RUN_KEYS <= run.keys()
        assert run["hyperparameters"]["learning_rate"] == pytest.approx(0.02)
        assert run["hyperparameters"]["hidden"] == [8]
        assert run["solved"] is False and run["solved_at_env_steps"] is None  # 8 episodes cannot solve
    assert summary["solved_fraction"] == 0.0
    assert summary["env_steps_total"] == sum(r["env_steps"] for r in summary["runs"])
    assert len(summary["groups"]) == 1 and summary["groups"][0]["runs"] == [0, 1, 2]
    config = json.loads((out / "config.json").read_text())
    assert config["grid"][0]["config"]["static"]["num_updates"] == 4
    assert config["seeds"] == {"first": 5, "count": 3}  # compact, whatever the number of seeds
    assert config["chunks"] == [{"group": 0, "chunk_size": 4, "num_runs": 3}]  # 3 runs padded to 2 devices
    metrics = loading.load_group_metrics(out, 0)
    assert metrics["episode_returns"].shape == (3, 4, 2)
    np.testing.assert_array_equal(metrics["seeds"], [5, 6, 7])
    np.testing.assert_allclose(
        [r["final_return"] for r in summary["runs"]], metrics["episode_returns"].reshape(3, -1).mean(axis=1)
    )


def test_saved_parameters_load_back_into_the_policy(two_runs):
    params = loading.load_params(two_runs[0], run=1)
    logits = MLPPolicy(num_actions=2, hidden=(8,)).apply({"params": params}, jnp.zeros(4))
    assert logits.shape == (2,) and np.all(np.isfinite(logits))
    with pytest.raises(IndexError):
        loading.load_params(two_runs[0], run=3)


def test_the_same_command_gives_bitwise_identical_results(two_runs):
    (a,), (b,) = (loading.load_metrics(d) for d in two_runs)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    pa, pb = (loading.load_params(d) for d in two_runs)
    assert files.jsonable(pa) == files.jsonable(pb)


def test_flags_override_the_preset(tmp_path):
    out = tmp_path / "a"
    assert main(["--preset", "seed-a", "--num-seeds", "2", "--num-episodes", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    hp = summary["runs"][0]["hyperparameters"]
    chosen = (hp["hidden"], hp["learning_rate"], hp["baseline_constant"], hp["episodes_per_update"])
    assert chosen == ([32], 0.01, 15.0, 1)
    assert hp["num_updates"] == 3


def test_every_algorithm_flag_overrides_the_preset(tmp_path):
    out = tmp_path / "b"
    argv = [
        "--num-seeds", "2", "--episodes-per-update", "8", "--num-episodes", "9", "--hidden", "8,4",
        "--activation", "tanh", "--returns", "reward_to_go", "--baseline", "constant", "--reduction",
        "episode_sum", "--gamma", "0.9", "--baseline-constant", "3", "--entropy-coef", "0.01",
        "--max-grad-norm", "0.5", "--lr", "0.002", "--out", str(out),
    ]
    assert main(argv) == 0
    hp = json.loads((out / "summary.json").read_text())["runs"][0]["hyperparameters"]
    assert hp == hp | {
        "hidden": [8, 4], "activation": "tanh", "returns": "reward_to_go", "baseline": "constant",
        "reduction": "episode_sum", "episodes_per_update": 8, "num_updates": 2,  # ceil(9 / 8)
        "gamma": pytest.approx(0.9), "baseline_constant": 3.0, "entropy_coef": pytest.approx(0.01),
        "max_grad_norm": 0.5, "learning_rate": pytest.approx(0.002),
    }
    assert loading.load_group_metrics(out, 0)["episode_returns"].shape == (2, 2, 8)
    assert loading.load_run_config(out, 1).static.hidden == (8, 4)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "CartPol-v1"], "did you mean CartPole-v1"),
        (["--lr", "-1"], "--learning-rate (--lr) must be > 0, got -1"),
        (["--lr", "inf"], "--learning-rate (--lr) must be a finite number, got inf"),
        (["--entropy-coef", "inf"], "--entropy-coef must be a finite number"),
        (["--gamma", "1.5"], "--gamma must be in [0, 1]"),
        (["--num-seeds", "0"], "--num-seeds must be >= 1"),
        (["--episodes-per-update", "0"], "--episodes-per-update must be >= 1, got 0"),
        (["--env", "tests.broken:volume_env"], "has observations of shape (1, 1, 1, 4)"),
        (["--env", "CartPole-v1", "--network", "cnn"], "--network 'cnn' needs image observations"),
        (["--preset", "seed-c"], "--preset expects one of seed-a, seed-b, default, got 'seed-c'"),
        (["--lr", "fast"], "--lr expects numbers, got 'fast'"),
        (["--learning-rate", "0.1", "abc"], "--learning-rate expects numbers, got 'abc'"),
        (["--num-seeds", "many"], "--num-seeds expects a whole number, got 'many'"),
        (["--lr"], "--lr expects numbers, got none"),
        (["--activation", "gelu"], "--activation expects one or more of relu, tanh, got 'gelu'"),
        (["--num-sed", "3"], "unrecognized option --num-sed; did you mean --num-seeds?"),
        (["--Num-Seeds", "3"], "unrecognized option --Num-Seeds; did you mean --num-seeds?"),
        (["--num-seeds"], "--num-seeds expects a whole number, got none"),
        (["--overwrite=yes"], "unexpected value yes: --overwrite takes no value, got yes"),
        (["--env", "CartPole-v1", "Acrobot-v1"],
         "unexpected value Acrobot-v1: --env takes one value, got CartPole-v1 Acrobot-v1"),
        (["--num-seeds", "4", "--num-seeds", "8"], "--num-seeds is given twice (4, then 8); give it once"),
        (["--lr", "0.1", "--lr=0.2"], "several values go after one flag: --lr 0.1 0.2"),
        (["--hidden", "8,x"], "--hidden takes widths"),
        (["--max-parallel", "0"], "--max-parallel must be >= 1"),
        (["--divergence-limit", "0"], "--divergence-limit must be > 0"),
        (["--num-seeds", "100000", "--max-parallel", "100000", "--num-updates", "10"], "set --max-parallel"),
        (["--resume", "/nonexistent-run"], "--resume /nonexistent-run: no such folder"),
        (["--squash", "tanh"], "--squash applies to Gaussian policies (Box actions) only (here: CartPole-v1, Discrete"),
        (["--init-log-std", "0.5"], "--init-log-std applies to Gaussian policies"),
        (["--conv", "8"], "--conv applies to --network 'cnn' only"),
        (["--value-lr", "0.01"], "--value-learning-rate (--value-lr) applies to the value baselines only"),
        (["--baseline-constant", "3"], "--baseline-constant applies to --baseline 'constant' only"),
        (["--advantage", "gae"], "--advantage 'gae' needs a value baseline: --baseline 'value' or 'value_norm'"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_an_existing_run_is_kept_unless_asked(two_runs, tmp_path, capsys):
    out = two_runs[0]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main([*SMALL, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run" in err and f"--resume {out}" in err and len(err.splitlines()) == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert main(["--resume", str(out)]) == 2
    assert "finished run" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert main([*small("--num-seeds", "2"), "--out", str(copy), "--overwrite"]) == 0
    assert loading.load_summary(copy)["num_runs"] == 2


def test_an_unwritable_out_folder_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([*SMALL, "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write to --out" in err and len(err.splitlines()) == 1


def test_help_explains_every_flag_with_the_presets_values(capsys):
    from pgjax.commands.options import RunOptions, train_settings_names

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m pgjax.train")
    for name in [*train_settings_names(), *(f.name for f in dataclasses.fields(RunOptions))]:
        assert "--" + name.replace("_", "-") in text, name
    flat = " ".join(text.split())  # as read, whatever the terminal's width wrapped
    assert re.search(r"--lr FLOAT\.\.\., --learning-rate FLOAT\.\.\. Adam learning rate\. \(default: 0\.03\)", flat)
    assert re.search(r"--num-updates INT Policy updates per run \(the training budget\)\. \(default: 100\)", flat)
    assert "CartPole-v1*" in text and "DeepSea-bsuite," in text  # the environments, with their own preset marked
    assert len(text.splitlines()) < 145  # 137 before 1.0 added --weighting and --step-loss
    assert main(["--preset", "seed-b", "--help"]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert re.search(r"Adam learning rate\. \(default: 0\.0003\)", flat) and "(default: 5000)" in flat


@pytest.mark.parametrize("module", ["train", "evaluate", "plot", "bench", "gradients"])
def test_every_command_has_version_usage_and_survives_a_closed_pipe(module, capsys):
    import importlib

    from pgjax.commands.shared import version

    command = importlib.import_module(f"pgjax.commands.{module}")
    assert command.main(["--version"]) == 0
    assert capsys.readouterr().out == f"pgjax {version()}\n"
    assert command.main(["--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m pgjax.{module} ")
    # `python -m pgjax.X --help | head -2`: the reader goes away before the help is written
    process = subprocess.Popen([sys.executable, "-m", f"pgjax.{module}", "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()


def _load_run(out):
    return loading.load_summary(out), loading.load_metrics(out), loading.load_params(out)


def test_a_grid_trains_every_combination_with_one_compile_per_static_group(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = ["--num-seeds", "2", "--num-updates", "3", "--episodes-per-update", "2", "--hidden", "8", "4,4",
            "--lr", "0.01", "0.03", "--out", str(out)]
    assert main(argv) == 0
    summary = loading.load_summary(out)
    assert summary["num_runs"] == 8 and summary["compile_groups"] == 2
    assert [g["varied"] for g in summary["groups"]] == [
        {"hidden": [8], "learning_rate": 0.01}, {"hidden": [8], "learning_rate": 0.03},
        {"hidden": [4, 4], "learning_rate": 0.01}, {"hidden": [4, 4], "learning_rate": 0.03},
    ]
    assert [r["seed"] for r in summary["runs"]] == [0, 1] * 4  # paired seeds
    assert [r["group"] for r in summary["runs"]] == [0, 0, 1, 1, 2, 2, 3, 3]
    printed = capsys.readouterr().out
    assert "4,4" in printed and "0.03" in printed
    assert "plan: 8 runs (4 grid points x 2 seeds) | 2 compile groups | 2 chunks x 4 runs | memory about" in printed
    assert "progress: 100% of the runs' updates | chunk 2/2 at update 3/3" in printed  # not a terminal: lines
    assert re.search(r"^solved 0/8 .* wall .*$", printed, re.M)  # not wrapped: the whole line is one line
    assert loading.load_run_config(out, 7).static.hidden == (4, 4)
    assert loading.load_run_config(out, 7).hparams.learning_rate == pytest.approx(0.03)
    # runs of the same seed and hidden sizes start from the same parameters, whatever the lr
    assert loading.load_group_metrics(out, 2)["episode_returns"][:, 0].tolist() == \
        loading.load_group_metrics(out, 3)["episode_returns"][:, 0].tolist()


def test_four_devices_give_the_runs_of_two_and_of_one(tmp_path):
    """8 runs over 4 forced CPU devices (2 each) against 2 devices in chunks of 4 (2 each): bitwise
    equal. Against 1 device: equal within float rounding (XLA then splits reductions over threads
    by batch shape), and the same episodes over this short run."""
    argv = [*small("--num-seeds", "8"), "--quiet"]

    def train(devices: int, out, *extra):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        command = [sys.executable, "-m", "pgjax.train", *argv, *extra, "--out", str(out)]
        subprocess.run(command, env=env, check=True, capture_output=True)
        return _load_run(out)

    four = train(4, tmp_path / "four")
    one = train(1, tmp_path / "one")
    assert main([*argv, "--max-parallel", "4", "--out", str(tmp_path / "two")]) == 0
    two = _load_run(tmp_path / "two")
    assert four[0]["devices"] == 4 and four[0]["chunks"] == 1 and four[0]["chunk_sizes"] == [8]
    assert two[0]["devices"] == 2 and two[0]["chunks"] == 2 and one[0]["devices"] == 1
    for name in four[1][0]:
        np.testing.assert_array_equal(four[1][0][name], two[1][0][name], err_msg=name)
        if name != "loop_steps":  # the longest episode of the batch a device rolls out, not of the run
            np.testing.assert_allclose(four[1][0][name], one[1][0][name], rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(four[1][0]["episode_returns"], one[1][0]["episode_returns"])
    assert files.jsonable(four[2]) == files.jsonable(two[2])


def test_the_console_script_sets_up_cpu_devices_before_jax_starts(tmp_path):
    """`pgjax-train` (`pgjax.commands.scripts.train`) asks XLA for its CPU devices before importing what starts JAX."""
    env = {**os.environ, "XLA_FLAGS": "", "PGJAX_CPU_DEVICES": "3"}
    script = f"import sys; sys.argv = ['pgjax-train', *{SMALL!r}, '--quiet', '--out', {str(tmp_path)!r}]; " \
             "from pgjax.commands.scripts import train; train()"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert loading.load_summary(tmp_path)["devices"] == 3


def test_a_second_run_loads_its_programs_from_the_compile_cache(tmp_path):
    """The same command twice with one --compile-cache folder (other seeds and learning rate: data,
    not program): the second process loads what the first compiled, and trains as it would have."""
    cache = tmp_path / "cache"

    def train(out, *extra, seed="5"):
        command = [sys.executable, "-m", "pgjax.train", *small("--seed", seed), *extra, "--quiet", "--compile-cache",
                   str(cache),
                   "--out", str(out)]
        subprocess.run(command, check=True, capture_output=True)
        return _load_run(out)

    first = train(tmp_path / "first")
    assert first[0]["compile_cache_hits"] == 0 and any(cache.iterdir())
    second = train(tmp_path / "second", "--lr", "0.02", seed="9")
    assert second[0]["compile_cache_hits"] >= 1
    assert main([*small("--seed", "9"), "--lr", "0.02", "--compile-cache", "off", "--out", str(tmp_path / "own")]) == 0
    for name, values in _load_run(tmp_path / "own")[1][0].items():
        np.testing.assert_array_equal(second[1][0][name], values, err_msg=name)


def test_an_unwritable_compile_cache_is_left_off_with_a_note(tmp_path):
    """In a process of its own: the cache is a per-process setting, fixed at the first compile."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    command = [sys.executable, "-m", "pgjax.train", *SMALL, "--quiet", "--compile-cache", str(blocker / "cache"),
               "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"compile cache off: cannot write {blocker / 'cache'}" in done.stdout
    assert loading.load_summary(tmp_path / "run")["compile_cache_hits"] == 0


def test_sigint_stops_at_a_safe_point_and_resume_reaches_the_uninterrupted_result(tmp_path):
    argv = ["--num-seeds", "8", "--num-updates", "300", "--episodes-per-update", "4", "--hidden", "8",
            "--checkpoint-every", "20", "--quiet"]
    command = [sys.executable, "-m", "pgjax.train", *argv]
    stopped = tmp_path / "stopped"
    process = subprocess.Popen([*command, "--out", str(stopped)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    deadline = time.monotonic() + 120
    while not (stopped / "checkpoints" / "chunk-0000" / "20").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    printed, _ = process.communicate(timeout=120)
    assert process.returncode == 130, printed
    assert f"python -m pgjax.train --resume {stopped}" in printed
    assert not (stopped / "summary.json").exists()
    resume = subprocess.run([sys.executable, "-m", "pgjax.train", "--resume", str(stopped), "--quiet"],
                            capture_output=True, text=True)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    whole = tmp_path / "whole"
    subprocess.run([*command, "--out", str(whole)], check=True, capture_output=True)
    (a_summary, a_metrics, a_params), (b_summary, b_metrics, b_params) = _load_run(stopped), _load_run(whole)
    assert 0 < a_summary["resumed_updates"] < 300
    for name in a_metrics[0]:
        np.testing.assert_array_equal(a_metrics[0][name], b_metrics[0][name], err_msg=name)
    assert files.jsonable(a_params) == files.jsonable(b_params)
    assert [r["final_return"] for r in a_summary["runs"]] == [r["final_return"] for r in b_summary["runs"]]


def test_sigterm_and_sigint_become_a_stop_request_and_handlers_come_back(capsys):
    from rich.console import Console

    from pgjax.commands.train import StopRequest

    before = signal.getsignal(signal.SIGTERM)
    with StopRequest(Console()) as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.signal == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C aborts at once
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before
    assert "SIGTERM: stopping after the current segment" in capsys.readouterr().out


@pytest.mark.parametrize("quiet", [False, True])
def test_the_progress_bar_shows_on_a_terminal_unless_quiet(quiet, tmp_path):
    import io

    from rich.console import Console

    from pgjax.commands.train import parse_args, run

    screen = io.StringIO()
    args = parse_args([*SMALL, "--out", str(tmp_path / "p"), *(["--quiet"] if quiet else [])])
    run(args, console=Console(file=screen, force_terminal=True, width=160))
    shown = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen.getvalue())  # without terminal control codes
    assert ("updates 4/4" in shown) is not quiet and "steps/s" in shown  # the aggregate line always


def test_a_gymnax_whose_step_gives_five_values_is_named_in_one_line(monkeypatch, tmp_path, capsys):
    import gymnax.environments.environment as gymnax_environment

    from pgjax.running import install as compat

    six = gymnax_environment.Environment.step

    def five(self, key, state, action, params=None):  # an old copy of gymnax's files: (obs, state, reward, done, info)
        obs, state, reward, terminated, truncated, info = six(self, key, state, action, params)
        return obs, state, reward, terminated | truncated, info

    monkeypatch.setattr(gymnax_environment.Environment, "step", five)
    monkeypatch.setattr(compat, "_outcome", [])  # checked again, not the outcome kept from an earlier test
    assert main([*SMALL, "--out", str(tmp_path / "old")]) == 2
    err = capsys.readouterr().err.strip()
    assert "gymnax's Environment.step returns 5 values" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "old").exists()


def test_results_that_cannot_fit_in_host_memory_are_refused_with_the_seeds_that_fit(monkeypatch, tmp_path, capsys):
    import pgjax.running.memory

    monkeypatch.setattr(pgjax.running.memory, "host_available_bytes", lambda: 2**30)
    assert main(["--num-seeds", "1000000", "--out", str(tmp_path / "big")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "of host memory and 1.0 GiB is free" in err, err
    fits = int(re.search(r"--num-seeds ([\d,]+) or fewer fit", err).group(1).replace(",", ""))
    assert 1000 < fits < 1000000
    assert not (tmp_path / "big").exists()


def test_a_stop_that_comes_in_the_last_segment_says_training_finished(tmp_path):
    import io

    from rich.console import Console

    from pgjax.commands.train import parse_args, run

    class LateStop:  # a signal that came when no segment was left to skip
        signal = signal.SIGINT

        def __call__(self):
            return False

    screen = io.StringIO()
    out = run(parse_args([*SMALL, "--quiet", "--out", str(tmp_path / "late")]), console=Console(file=screen),
              stop=LateStop())
    assert (out / "summary.json").exists()
    assert "SIGINT arrived during the last segment or after it: training finished, every run is complete and " \
           "saved (nothing was lost)" in screen.getvalue()
