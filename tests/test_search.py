"""Search over ranges: parsing, the samplers' spread, crossing with listed values, training and resuming."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from rich.console import Console

from pgjax.commands.grid_settings import resolve_grid, search_of
from pgjax.commands.train import main, parse_args, run
from pgjax.results.tables import print_report
from pgjax.running import grid
from pgjax.running.run_folder import loading
from pgjax.running.run_folder.files import CONFIG_FILE, SUMMARY_FILE
from pgjax.running.search import Range, Search, balance_note, draw, parse_range, unit_points

SMALL = ["--num-seeds", "2", "--num-updates", "25", "--episodes-per-update", "2", "--hidden", "8", "--quiet",
         "--confirm-seeds", "0"]  # tests/test_confirm.py confirms a search
SEARCH = ["--lr", "1e-3:1e-1:log", "--entropy-coef", "0:0.02", "--num-samples", "4", "--sampler-seed", "3"]


@pytest.mark.parametrize("text, expected", [
    ("0:0.02", Range(0.0, 0.02, "linear")),
    ("1e-3:1e-1:log", Range(1e-3, 1e-1, "log")),
    ("-1:2.5", Range(-1.0, 2.5, "linear")),
])
def test_a_range_is_lo_hi_with_an_optional_log_scale(text, expected):
    assert parse_range(text) == expected


def test_an_integer_range_takes_whole_numbers():
    assert parse_range("2:16:log", integer=True) == Range(2, 16, "log", integer=True)
    with pytest.raises(ValueError, match="must be whole numbers"):
        parse_range("2.5:8", integer=True)


@pytest.mark.parametrize("text, message", [
    ("1:2:lin", "a range is LO:HI .* or LO:HI:log"),
    ("1:2:3:4", "a range is LO:HI"),
    ("1:abc", "LO and HI must be numbers"),
    ("2:1", "needs LO < HI"),
    ("1:1", "needs LO < HI"),
    ("0:1:log", "the log range '0:1:log' needs LO > 0"),
    ("1:inf", "finite ends"),
])
def test_a_malformed_range_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_range(text)


def _stratified(column: np.ndarray, bins: int) -> bool:
    """Whether every one of `bins` equal slices of [0, 1) holds the same number of the values."""
    counts = np.bincount(np.floor(column * bins).astype(int), minlength=bins)
    return bool((counts == counts[0]).all())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sobol_points_fill_every_slice_of_every_dimension_where_random_ones_do_not(seed):
    sobol = unit_points(64, 3, "sobol", seed)
    assert sobol.shape == (64, 3) and (0 <= sobol).all() and (sobol < 1).all()
    # one point in each of 64 slices of every dimension, and in each cell of an 8 x 8 grid of two of them:
    # 64 random points land so with probability 64!/64**64 < 1e-26 per dimension
    assert all(_stratified(sobol[:, d], 64) for d in range(3))
    cells = np.floor(sobol[:, :2] * 8).astype(int)
    assert len({tuple(c) for c in cells}) == 64
    random = unit_points(64, 3, "random", seed)
    assert not any(_stratified(random[:, d], 64) for d in range(3))
    from scipy.stats import qmc

    assert qmc.discrepancy(sobol) < qmc.discrepancy(random)


def test_sobol_points_not_a_power_of_two_are_the_first_of_the_next_power_and_say_so():
    assert np.array_equal(unit_points(24, 2, "sobol", 5), unit_points(32, 2, "sobol", 5)[:24])
    assert balance_note(24, "sobol") == ("--num-samples 24 is not a power of two: Sobol' points are balanced over "
                                         "the ranges for 16 or 32 (the first 24 of 32 are taken)")
    assert balance_note(32, "sobol") is None and balance_note(24, "random") is None


def test_a_log_range_spreads_its_values_evenly_over_the_decades():
    values = np.array([p["learning_rate"] for p in draw({"learning_rate": Range(1e-4, 1.0, "log")}, 64, "sobol", 0)])
    assert ((1e-4 <= values) & (values <= 1.0)).all()
    assert collections.Counter(np.floor(np.log10(values)).astype(int)) == {-4: 16, -3: 16, -2: 16, -1: 16}
    linear = np.array([p["x"] for p in draw({"x": Range(1e-4, 1.0)}, 64, "sobol", 0)])
    assert (linear < 1e-1).sum() in (6, 7)  # a uniform range puts a tenth of its points (6.4) below 0.1


def test_an_integer_range_gives_every_integer_its_share():
    values = [p["episodes_per_update"] for p in draw({"episodes_per_update": Range(2, 5, integer=True)}, 64,
                                                     "sobol", 0)]
    assert all(isinstance(v, int) for v in values)
    assert collections.Counter(values) == {2: 16, 3: 16, 4: 16, 5: 16}
    logs = [p["n"] for p in draw({"n": Range(1, 1000, "log", integer=True)}, 256, "random", 0)]
    assert min(logs) >= 1 and max(logs) <= 1000 and sum(v < 32 for v in logs) > 100  # about half below sqrt(1000)


def test_the_sampler_seed_decides_the_points():
    ranges = {"learning_rate": Range(1e-3, 1e-1, "log"), "entropy_coef": Range(0.0, 0.02)}
    for sampler in ("sobol", "random"):
        assert draw(ranges, 8, sampler, 4) == draw(ranges, 8, sampler, 4)
        assert draw(ranges, 8, sampler, 4) != draw(ranges, 8, sampler, 5)
    given = {"learning_rate": ("1e-3:1e-1:log",)}
    assert search_of(given, 8, seed=7).seed == 7  # --sampler-seed defaults to --seed
    assert search_of(given, 8, "random", sampler_seed=2, seed=7) == Search(
        {"learning_rate": Range(1e-3, 1e-1, "log")}, 8, "random", 2)


def test_drawn_points_cross_the_listed_values_under_one_compile_per_static_group():
    given = {"learning_rate": ("1e-3:1e-1:log",), "gamma": (0.98, 0.99)}
    points = resolve_grid("default", given, search_of(given, 4))
    assert len(points) == 8 and [p.index for p in points] == list(range(8))
    assert [p.config.hparams.gamma for p in points] == [0.98] * 4 + [0.99] * 4
    rates = [p.config.hparams.learning_rate for p in points]
    assert rates[:4] == rates[4:] and len(set(rates)) == 4  # the same drawn points with each gamma
    assert len(grid.compile_groups(points)) == 1
    given = {**given, "episodes_per_update": (2, 4)}
    assert len(grid.compile_groups(resolve_grid("default", given, search_of(given, 4)))) == 2
    drawn = {"episodes_per_update": ("2:8",)}  # an integer static setting: one compile per value drawn
    points = resolve_grid("default", drawn, search_of(drawn, 4))
    assert len(grid.compile_groups(points)) == len({p.config.static.episodes_per_update for p in points}) > 1


@pytest.mark.parametrize("argv, message", [
    (["--lr", "1e-3:1e-1:log"], "--learning-rate (--lr) 1e-3:1e-1:log is a range: add --num-samples N"),
    (["--num-samples", "4"], "--num-samples 4 draws points from ranges and no setting has one: give a range"),
    (["--lr", "0.1", "0.001:0.01", "--num-samples", "4"], "--learning-rate (--lr) takes listed values or one range"),
    (["--lr", "0:1:log", "--num-samples", "4"], "--learning-rate (--lr): the log range '0:1:log' needs LO > 0"),
    (["--gamma", "0.9:1.1", "--num-samples", "4"], "--gamma must be in [0, 1], got 1.1 (an end of the range"),
    (["--hidden", "8:32", "--num-samples", "4"], "--hidden takes no range ('8:32')"),
    (["--activation", "0:1", "--num-samples", "4"], "--activation expects one or more of relu, tanh, got '0:1'"),
    (["--num-updates", "2:4", "--num-samples", "4"], "--num-updates expects a whole number, got '2:4'"),
    (["--sampler", "random"], "--sampler and --sampler-seed apply to --num-samples"),
    (["--lr", "1e-3:1e-1", "--num-samples", "0"], "--num-samples must be >= 1, got 0"),
    (["--lr", "fast:1", "--num-samples", "4"], "--learning-rate (--lr): a range is LO:HI (uniform) or LO:HI:log"),
    (["--episodes-per-update", "1:2", "--num-samples", "8"],
     "--num-samples 8 draws the same point more than once from the integer range --episodes-per-update 1:2"),
    (["--lr", "1e-3:1e-1", "--num-samples", "4", "--sampler-seed", "-1"],
     "--sampler-seed -1 is outside the seeds a JAX key holds"),
])
def test_bad_ranges_exit_2_with_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "out"
    assert main([*SMALL, *SEARCH, "--out", str(out)]) == 0
    return out


def test_a_search_trains_its_drawn_points_as_groups_under_one_compile(searched):
    summary = loading.load_summary(searched)
    record = {"sampler": "sobol", "seed": 3, "num_samples": 4, "ranges": {
        "learning_rate": {"low": 1e-3, "high": 1e-1, "scale": "log"},
        "entropy_coef": {"low": 0.0, "high": 0.02, "scale": "linear"}}}
    assert summary["search"] == record
    assert summary["num_groups"] == 4 and summary["num_runs"] == 8 and summary["compile_groups"] == 1
    drawn = Search({"learning_rate": Range(1e-3, 1e-1, "log"), "entropy_coef": Range(0.0, 0.02)}, 4, "sobol",
                   3).points()
    for group, point in zip(summary["groups"], drawn):
        assert group["varied"] == point  # full precision in JSON
        assert group["hyperparameters"]["gamma"] == 1.0
    config = json.loads((searched / CONFIG_FILE).read_text())
    assert config["search"] == record and len(config["grid"]) == 4
    assert config["given"]["learning_rate"] == ["1e-3:1e-1:log"]


def test_the_report_rounds_drawn_values_to_four_digits(searched):
    summary = loading.load_summary(searched)
    console = Console(record=True, width=250)
    print_report(summary, console)
    text = console.export_text()
    rate = summary["groups"][0]["varied"]["learning_rate"]
    assert f" {rate:.4g} " in text and repr(rate) not in text


class _StopAtFirstSegment:
    """A stop request (`pgjax.commands.shared.StopRequest`'s interface) made before the first segment ends."""

    signal = None

    def __call__(self) -> bool:
        return True


def test_a_stopped_search_resumes_with_its_drawn_points_to_the_uninterrupted_result(searched, tmp_path):
    from pgjax.running.sweep import Interrupted

    stopped = tmp_path / "stopped"
    with pytest.raises(Interrupted):
        run(parse_args([*SMALL, *SEARCH, "--out", str(stopped)]), console=Console(quiet=True),
            stop=_StopAtFirstSegment())
    assert not (stopped / SUMMARY_FILE).exists()
    assert main(["--resume", str(stopped), "--quiet"]) == 0
    resumed, whole = loading.load_summary(stopped), loading.load_summary(searched)
    assert 0 < resumed["resumed_updates"] and resumed["search"] == whole["search"]
    assert [g["hyperparameters"] for g in resumed["groups"]] == [g["hyperparameters"] for g in whole["groups"]]
    assert [r["final_return"] for r in resumed["runs"]] == [r["final_return"] for r in whole["runs"]]


def test_help_shows_the_search_flags(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--num-samples", "--sampler {sobol,random,tpe}", "--sampler-seed", "LO:HI:log"):
        assert flag in text, flag


def test_the_report_puts_the_best_first_and_gives_its_flags_at_full_precision(searched):
    """The table's rows follow summary.json's ranking, and the best line's flags, typed again, draw exactly the
    best group's settings (float32), where the table's 4 digits would not."""
    import io

    from pgjax.commands.train import sweep_of
    from pgjax.results import tables
    from pgjax.results.run_record import print_best

    summary = loading.load_summary(searched)
    ranked = summary["ranking"]["groups"]
    assert sorted(ranked) == [0, 1, 2, 3]
    shown = io.StringIO()
    console = Console(file=shown, width=400)
    tables.print_report(summary, console)
    rows = [line.split("│")[1].strip() for line in shown.getvalue().splitlines() if line.startswith("│")]
    assert rows == [str(g) for g in ranked]
    print_best(summary, console)
    best_line = shown.getvalue().strip().splitlines()[-1]
    assert best_line.startswith(f"best: group {ranked[0]} (IQM ")
    best = summary["groups"][ranked[0]]["hyperparameters"]
    (point,) = sweep_of(parse_args(best_line.split("its settings: ")[1].split())).points
    again = point.hyperparameters()
    for name in summary["groups"][0]["varied"]:
        assert np.float32(again[name]) == np.float32(best[name]), name
