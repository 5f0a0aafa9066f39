"""Input that cannot work is refused up front: one line `error: ...` naming the flag, exit status 2, nothing written.

Each case here once trained something else than asked (a value float32 turns into 0 or inf, a seed that wraps),
wrote where it should not (--out '', a bench .tmp), ran out of memory or time, or failed deep inside with a trace.
"""

from __future__ import annotations

import math
import warnings

import pytest

from pgjax.algo.config import Hyperparams
from pgjax.commands.bench import BENCH_FILE
from pgjax.commands.checks import SEED_MAX, check_seeds
from pgjax.commands.outputs import check_output_file
from pgjax.commands.train import main

SMALL = ["--num-seeds", "2", "--num-updates", "2", "--episodes-per-update", "2", "--hidden", "8"]


def refused(capsys, tmp_path, argv: list[str], command=main) -> str:
    """Run `command(argv)` with --out in `tmp_path` where it takes one; assert exit 2, one line, nothing written."""
    before = set(tmp_path.rglob("*"))
    assert command(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert set(tmp_path.rglob("*")) == before  # no run folder, config.json or .tmp
    return err


# 1. values validated as training computes them, in float32

@pytest.mark.parametrize("argv, message", [
    (["--lr", "1e-320"], "--learning-rate (--lr) 1e-320 becomes 0 in float32, as training computes it; give a value "
                         "between 1.2e-38 and 3.4e+38"),
    (["--max-grad-norm", "1e-50"], "--max-grad-norm 1e-50 becomes 0 in float32"),
    (["--lr", "1e39"], "--learning-rate (--lr) 1e+39 becomes inf in float32"),
    (["--entropy-coef", "1e39"], "--entropy-coef 1e+39 becomes inf in float32"),
    (["--baseline", "constant", "--baseline-constant", "1e39"], "--baseline-constant 1e+39 becomes inf in float32"),
    (["--baseline", "constant", "--baseline-constant", "-1e39"], "--baseline-constant -1e+39 becomes -inf"),
    (["--env", "Pendulum-v1", "--init-log-std", "1e39"], "--init-log-std 1e+39 becomes inf in float32"),
    (["--gamma", "1e-40"], "--gamma 1e-40 becomes a subnormal number in float32"),
    (["--lr", "1e-3:1e39:log", "--num-samples", "4"],
     "becomes inf in float32, as training computes it; give a value between 1.2e-38 and 3.4e+38 (an end of the "
     "range 1e-3:1e39:log)"),
    (["--lr", "1e-320:1e-3:log", "--num-samples", "4"], "1e-320 becomes 0 in float32"),
])
def test_values_float32_cannot_hold_are_refused_without_a_numpy_warning(argv, message, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" was the only word before
        err = refused(capsys, tmp_path, [*argv, "--out", str(tmp_path / "x")])
    assert message in err, err


def test_float32_limits_themselves_and_infinity_where_it_means_off_are_kept():
    Hyperparams(learning_rate=3.4e38, max_grad_norm=math.inf, divergence_limit=math.inf, baseline_constant=-3.4e38,
                entropy_coef=1.2e-38, init_log_std=0.0).validate()
    with pytest.raises(ValueError, match="give 0 or a value of magnitude between"):
        Hyperparams(baseline_constant=1e-45).validate()


# 2. seeds a JAX key holds (32 bits)

@pytest.mark.parametrize("argv, message", [
    (["--seed", "4294967296"], "--seed 4294967296 is outside the seeds a JAX key holds (32 bits): give --seed from 0 "
                               "to 4294967295"),
    (["--seed", "-1"], "--seed -1 is outside the seeds a JAX key holds"),
    (["--seed", "9223372036854775808"], "--seed 9223372036854775808 is outside the seeds"),
    (["--seed", "4294967295", "--num-seeds", "2"], "--seed 4294967295 with --num-seeds 2 uses seeds up to 4294967296, "
                                                   "past 4294967295, the largest a JAX key holds (32 bits): give "
                                                   "--seed 4294967294 or less"),
    (["--seed", "-1", "--lr", "1e-3:1e-1:log", "--num-samples", "4"], "--seed -1 is outside the seeds"),
    (["--sampler-seed", "-1", "--lr", "1e-3:1e-1:log", "--num-samples", "4"], "--sampler-seed -1 is outside the seeds"),
    (["--sampler-seed", "4294967296", "--lr", "1e-3:1e-1:log", "--num-samples", "4"], "--sampler-seed 4294967296 is "
                                                                                      "outside"),
])
def test_seeds_a_key_cannot_hold_are_refused_naming_the_flag(argv, message, tmp_path, capsys):
    err = refused(capsys, tmp_path, [*argv, "--out", str(tmp_path / "x")])
    assert message in err, err


def test_the_last_seed_a_key_holds_is_taken():
    check_seeds("--seed", SEED_MAX - 63, 64, "--num-seeds")
    check_seeds("--seed", 0)
    with pytest.raises(ValueError, match="give --seed 4294967232 or less"):
        check_seeds("--seed", SEED_MAX - 62, 64, "--num-seeds")


def test_more_seeds_than_a_key_holds_asks_for_fewer_not_a_negative_seed():
    with pytest.raises(ValueError, match=r"^--num-seeds 1000000000000 is more seeds than a JAX key holds .*: give "
                                         r"--num-seeds 4294967296 or fewer with --seed 0$"):
        check_seeds("--seed", 0, 10**12, "--num-seeds")
    with pytest.raises(ValueError, match="give --seed 0 or less"):  # every seed a key holds, from 0: that fits
        check_seeds("--seed", 5, SEED_MAX + 1, "--num-seeds")


@pytest.mark.parametrize("seed", ["99999999999999999999", "-1", "4294967296"])
def test_evaluate_refuses_a_seed_a_key_cannot_hold_in_one_line(seed, tmp_path, capsys):
    from pgjax.commands.evaluate import main as evaluate

    err = refused(capsys, tmp_path, [str(tmp_path), "--seed", seed], evaluate)
    assert f"--seed {seed} is outside the seeds a JAX key holds" in err


# 3. empty and degenerate values

@pytest.mark.parametrize("argv, message", [
    (["--out", ""], "--out '.' is the current folder"),
    (["--out", "."], "--out '.' is the current folder"),
    (["--out", "/"], "--out / is the filesystem's root"),
    (["--compile-cache", ""], "--compile-cache '' names no folder"),
    (["--wandb", ""], "--wandb '' names no project"),
    (["--wandb", " "], "--wandb ' ' names no project"),
    (["--wandb", "team:project"], "--wandb 'team:project' cannot name a W&B project"),
    (["--lr", "0.01", "0.01"], "--learning-rate (--lr) lists 0.01 twice: each value trains its own grid point"),
    (["--lr", "0.01", "0.0100000001"], "(0.01 and 0.0100000001 are one value in float32)"),
    (["--hidden", "8", "8"], "--hidden lists 8 twice"),
    (["--hidden", "8,8", "8x8"], "--hidden lists 8,8 twice"),
    (["--activation", "tanh", "tanh"], "--activation lists tanh twice"),
])
def test_empty_paths_names_and_repeated_values_are_refused(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --out '' once wrote the run here
    small = SMALL[:-2] if "--hidden" in argv else SMALL
    err = refused(capsys, tmp_path, [*small, *argv] if "--out" in argv else [*small, *argv, "--out", "x"])
    assert message in err, err


# 4. bench: every flag checked before any benchmarking, --out included

@pytest.mark.parametrize("argv, message", [
    (["--num-updates", "0"], "--num-updates must be >= 1, got 0"),
    (["--env-limit-steps", "0"], "--env-limit-steps must be >= 1, got 0"),
    (["--env-limit-steps", "-5"], "--env-limit-steps must be >= 1, got -5"),
    (["--runs", "0"], "--runs must be >= 1 each, got 0"),
    (["--runs", "4", "-1"], "--runs must be >= 1 each, got -1"),
    (["--runs", "4", "4"], "--runs lists 4 twice"),
    (["--compile-updates", "0"], "--compile-updates must be >= 1 each, got 0"),
    (["--out", "{tmp}"], "is a folder: give a file in it"),
    (["--out", ""], "--out '.' names no file"),
    (["--out", "{tmp}/file/b.json"], "file is a file, not a folder"),
    (["--out", "/proc/b.json"], "cannot write to --out /proc/b.json"),
    (["--out", "{tmp}/" + "n" * 300], "n: File name too long"),
])
def test_bench_refuses_every_bad_flag_before_benchmarking(argv, message, tmp_path, capsys, monkeypatch):
    import pgjax.commands.bench
    import pgjax.results.throughput

    monkeypatch.setattr(pgjax.results.throughput, "measure_rung", _never("a rung of the ladder"))
    (tmp_path / "file").write_text("")
    err = refused(capsys, tmp_path, [a.replace("{tmp}", str(tmp_path)) for a in argv], pgjax.commands.bench.main)
    assert message in err, err


def test_bench_refuses_an_out_folder_it_cannot_write_to(tmp_path, capsys, write_probes_refused):
    from pgjax.commands.bench import main as bench

    err = refused(capsys, tmp_path, ["--out", str(tmp_path / "new" / "b.json")], bench)
    assert f"cannot write to --out {tmp_path / 'new' / 'b.json'}: Permission denied in {tmp_path}" in err


def test_bench_out_writes_over_no_file_but_an_earlier_bench_json(tmp_path, capsys, monkeypatch):
    import pgjax.results.throughput
    from pgjax.commands.bench import main as bench

    monkeypatch.setattr(pgjax.results.throughput, "measure_rung", _never("a rung of the ladder"))
    for content in (b"my notes\n", b'{"complete": true}', b"[]"):
        (tmp_path / "b.json").write_bytes(content)
        err = refused(capsys, tmp_path, ["--out", str(tmp_path / "b.json")], bench)
        assert err == (f"error: --out {tmp_path / 'b.json'} is an existing file, not a pgjax.bench JSON (with "
                       '"complete", "device" and "ladder"): pgjax writes neither over it nor beside it; give another '
                       "path (or move that file away)")
        assert (tmp_path / "b.json").read_bytes() == content and [p.name for p in tmp_path.iterdir()] == ["b.json"]
    own = tmp_path / "own.json"
    own.write_text('{"complete": false, "device": {}, "ladder": []}')
    check_output_file("--out", own, BENCH_FILE)  # an earlier --out of bench: written over
    own.write_text("")
    check_output_file("--out", own, BENCH_FILE)  # an empty file: nothing to lose


def test_bench_out_on_a_full_disk_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    import errno

    import pgjax.results.throughput
    from pgjax.commands.bench import main as bench
    from pgjax.running.run_folder import files

    monkeypatch.setattr(pgjax.results.throughput, "measure_rung", _never("a rung of the ladder"))

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "write_bytes", full)
    assert bench(["--quick", "--out", str(tmp_path / "b.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no space left on device writing {tmp_path / 'b.json'} (about ") and \
        err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_a_writable_output_file_passes_and_nothing_is_left(tmp_path):
    check_output_file("--out", tmp_path / "a" / "b" / "bench.json", make_folders=True)
    check_output_file("--out", None)
    assert list(tmp_path.iterdir()) == []


# 5. evaluate and compare: plans beyond memory or time

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate") / "run"
    assert main([*SMALL, "--out", str(out), "--quiet"]) == 0
    return out


def test_evaluate_refuses_episodes_beyond_memory_with_the_figure(run_dir, capsys):
    from pgjax.commands.evaluate import main as evaluate

    before = sorted(p.name for p in run_dir.iterdir())
    assert evaluate([str(run_dir), "--episodes", "10000000000"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--episodes 10,000,000,000 of 2 runs would need about" in err, err
    assert "or fewer fit" in err
    assert evaluate([str(run_dir), "--episodes", "0"]) == 2
    assert "--episodes must be >= 1, got 0" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == before


@pytest.mark.parametrize("resamples", ["1000000000000", "0", "99"])
def test_compare_bounds_the_resamples(resamples, run_dir, capsys):
    from pgjax.commands.compare import main as compare

    assert compare([str(run_dir), "--resamples", resamples]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resamples must be from 100 to 1,000,000" in err, err


def _never(what: str):
    """A stand-in for a step a refusal must not reach: it fails the test if called."""
    def called(*args, **kwargs):
        raise AssertionError(f"{what} ran before the refusal")
    return called


# 6. train: plans beyond the machine, short messages that blame the right flag

def test_too_many_samples_are_refused_before_drawing(tmp_path, capsys, monkeypatch):
    import pgjax.running.search

    monkeypatch.setattr(pgjax.running.search.Search, "points", _never("drawing the points"))
    err = refused(capsys, tmp_path, ["--lr", "1e-3:1e-1:log", "--num-samples", "100000000", "--out",
                                     str(tmp_path / "x")])
    assert "--num-samples 100,000,000 is more than the 65,536 points one command draws" in err


def test_a_grid_beyond_host_memory_is_refused_before_its_points_are_drawn(tmp_path, capsys, monkeypatch):
    import pgjax.running.devices
    import pgjax.running.memory
    import pgjax.running.search

    monkeypatch.setattr(pgjax.running.devices, "host_available_bytes", lambda: 2**30)
    monkeypatch.setattr(pgjax.running.memory, "host_available_bytes", lambda: 2**30)
    monkeypatch.setattr(pgjax.running.search.Search, "points", _never("drawing the points"))
    err = refused(capsys, tmp_path, ["--lr", "1e-3:1e-1:log", "--num-samples", "65536", "--gamma", "0.9", "0.99",
                                     "--out", str(tmp_path / "x")])
    assert "131,072 grid points x 64 seeds would need about" in err and "1.0 GiB is free" in err, err


def test_too_many_updates_blame_num_updates_not_the_seeds(tmp_path, capsys):
    err = refused(capsys, tmp_path, ["--num-updates", "1000000000000", "--out", str(tmp_path / "x")])
    assert "the metrics of one run over --num-updates 1,000,000,000,000 alone would need about" in err, err
    assert "or fewer fit the 64 runs" in err and "--num-seeds" not in err


def test_too_many_rungs_are_one_short_line(tmp_path, capsys):
    err = refused(capsys, tmp_path, ["--halving", "2", "--rungs", "100000", "--num-updates", "9", "--out",
                                     str(tmp_path / "x")])
    assert "at most 4 rungs fit 9 updates with --halving 2" in err and len(err) < 300, err


@pytest.mark.parametrize("argv, message", [
    (["--out", "OUT", "0.01"], "unexpected value 0.01: --out takes one value, got OUT 0.01"),
    (["--quiet", "3"], "unexpected value 3: --quiet takes no value, got 3"),
])
def test_a_stray_value_names_the_flag_before_it(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = refused(capsys, tmp_path, argv)
    assert message in err, err


# 7. spaces with nothing in them

@pytest.mark.parametrize("factory, message", [
    ("make_no_actions", "has a Discrete(0) action space: a policy needs at least one action to choose (n >= 1)"),
    ("make_no_box_actions", "has a Box action space of shape (0,): a Gaussian policy needs at least one action"),
    ("make_empty_observations", "has observations of shape (0,), which hold no number"),
])
def test_spaces_with_nothing_in_them_are_refused_before_any_file(factory, message, tmp_path, capsys):
    from pgjax.algo.envs import make_env

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_env(f"tests.custom:{factory}")
    err = refused(capsys, tmp_path, ["--env", f"tests.custom:{factory}", "--out", str(tmp_path / "x")])
    assert message in err, err


def test_billions_of_episodes_are_refused_without_jaxs_int64_warning(tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        err = refused(capsys, tmp_path, ["--episodes-per-update", "4294967296", "--num-updates", "2",
                                         "--out", str(tmp_path / "run")])
    assert "one run per device needs" in err
    assert not [w for w in caught if "int64" in str(w.message)]  # JAX's, from tracing the estimate: not shown
