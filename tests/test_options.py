"""The command line's declarations: derived from the config dataclasses, round trips, checks, progress lines."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from rich.console import Console

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.presets import ENV_PRESETS, PRESETS, preset_config
from pgjax.commands.grid_settings import resolve_grid
from pgjax.commands.options import ALIASES, train_arguments, train_settings_names
from pgjax.commands.shared import make_console
from pgjax.running.run_folder.files import jsonable


@pytest.mark.parametrize("config", [*PRESETS.values(), *ENV_PRESETS.values()],
                         ids=[*PRESETS, *(f"env:{e}" for e in ENV_PRESETS)])
def test_from_dict_reverses_to_dict_also_through_json(config):
    assert Config.from_dict(config.to_dict()) == config
    assert Config.from_dict(json.loads(json.dumps(jsonable(config.to_dict())))) == config


def test_from_dict_refuses_settings_it_does_not_know():
    with pytest.raises(ValueError, match="unknown StaticConfig settings: hiden"):
        Config.from_dict({"static": {"hiden": [8]}})


def test_every_setting_has_one_flag_named_as_its_field_with_its_help():
    arguments = train_arguments()
    settings = {f.name for f in dataclasses.fields(arguments.__dataclass_fields__["settings"].default_factory)}
    assert set(train_settings_names()) <= settings
    assert {f.name for f in dataclasses.fields(StaticConfig)} <= settings
    assert {f.name for f in dataclasses.fields(Hyperparams)} <= settings
    assert ALIASES == {"--lr": "--learning-rate", "--value-lr": "--value-learning-rate"}
    for cls in (StaticConfig, Hyperparams):
        for f in dataclasses.fields(cls):
            assert f.name == "network" or f.metadata["help"], f.name


def test_preset_choices_come_from_presets():
    import typing

    preset_type = typing.get_type_hints(train_arguments(), include_extras=True)["preset"].__origin__
    assert typing.get_args(preset_type) == tuple(PRESETS)


def test_a_setting_that_does_not_apply_is_refused_unless_some_grid_point_uses_it():
    with pytest.raises(ValueError, match="--squash applies to Gaussian policies"):
        resolve_grid("default", {"squash": ("tanh",)})
    with pytest.raises(ValueError, match="--gae-lambda applies to --advantage 'gae' only"):
        resolve_grid("default", {"env": "Pendulum-v1", "advantage": ("return",), "gae_lambda": (0.9,)})
    points = resolve_grid("default", {"env": "Pendulum-v1", "squash": ("tanh",), "init_log_std": (0.5,)})
    assert points[0].config.static.squash == "tanh" and points[0].config.hparams.init_log_std == 0.5
    points = resolve_grid("default", {"baseline": ("constant", "batch_norm"), "baseline_constant": (3.0,)})
    assert len(points) == 2  # the constant applies to the first grid point


def test_infinity_is_refused_except_where_it_means_off():
    Hyperparams(max_grad_norm=math.inf, divergence_limit=math.inf).validate()
    for name in ("learning_rate", "baseline_constant", "entropy_coef", "value_learning_rate", "value_scale",
                 "init_log_std"):
        with pytest.raises(ValueError, match=f"{name} must be a finite number"):
            Hyperparams(**{name: math.inf}).validate()


def test_an_environment_without_a_preset_names_the_settings_it_trains_with():
    import jax

    from pgjax.commands.options import RunOptions
    from pgjax.commands.train import parse_args, preset_note, sweep_of
    from pgjax.running.plan import make_plan

    def plan_of(argv: list[str]):
        sweep = sweep_of(parse_args(argv))
        return make_plan(sweep.preset, sweep.points, sweep.stages, RunOptions(num_seeds=2), jax.devices())

    plan = plan_of(["--env", "DeepSea-bsuite"])
    note = preset_note(plan)
    assert note.startswith("DeepSea-bsuite has no preset of its own: training with CartPole-v1's default settings "
                           "and the learning rate")
    assert "--hidden 32" in note and "--learning-rate 0.01" in note and "--squash" not in note
    assert "--weighting" not in note and "--step-loss" not in note  # off: no flag with an empty value
    assert preset_note(plan_of([])) is None
    given = sweep_of(parse_args(["--env", "DeepSea-bsuite", "--lr", "0.003"])).given
    mine = preset_note(plan_of(["--env", "DeepSea-bsuite", "--lr", "0.003"]), given)
    assert "the learning rate measured" not in mine and "--learning-rate 0.003" in mine
    points = resolve_grid("default", {"env": "DeepSea-bsuite"})
    assert plan.points == points
    cartpole = preset_config("default")
    assert points[0].config == dataclasses.replace(
        cartpole, static=dataclasses.replace(cartpole.static, env="DeepSea-bsuite"),
        hparams=dataclasses.replace(cartpole.hparams, learning_rate=0.01))  # CartPole's but the measured lr


def test_output_that_is_not_a_terminal_is_not_wrapped():
    console = make_console()  # pytest's captured stdout is not a terminal
    assert not console.is_terminal and console.width >= 10_000


def test_progress_lines_when_not_a_terminal_and_the_time_left_after_the_first_chunk():
    import io

    import numpy as np

    from pgjax.running.progress import SweepProgress
    from pgjax.running.sweep import Chunk, SegmentReport

    screen, now = io.StringIO(), [0.0]
    # 3 chunks of 2 runs x 20 updates (the last holds 1 real run): 100 run-updates
    chunks = [Chunk(0, 0, np.arange(2), 2), Chunk(1, 0, np.arange(2, 4), 2), Chunk(2, 0, np.arange(4, 5), 2)]
    with SweepProgress(100, Console(file=screen, width=80), "lines", every_seconds=30, clock=lambda: now[0]) as p:
        for chunk in chunks:
            for done, ret in ((10, 30.0), (20, 60.0)):
                now[0] += 20
                p.report(SegmentReport(chunk, 3, done, 20, 10, 1000, 2.0, ret))
    lines = screen.getvalue().splitlines()
    # the work left is 80 run-updates, at the 20 per 2 s trained so far
    assert lines[0] == "progress: 20% of the runs' updates | chunk 1/3 at update 10/20 | 500 steps/s | return " \
                       "30.0 (chunk 1) | 20 s elapsed, about 8.0 s left"
    assert lines[1] == "chunk 1 of 3 trained in 4.0 s; the other 2 should take about 6.0 s"  # 3 of the 5 runs left
    assert lines[2].startswith("progress: 60% of the runs' updates | chunk 2/3 at update 10/20")  # 30 s later
    assert lines[-1].startswith("progress: 100% of the runs' updates | chunk 3/3 at update 20/20")
    assert lines[-1].endswith("| 2 min 0 s elapsed")
    assert len(lines) == 5
    one = io.StringIO()
    with SweepProgress(40, Console(file=one, width=80), "lines", clock=lambda: now[0]) as p:
        p.report(SegmentReport(Chunk(0, 0, np.arange(4), 4), 1, 10, 10, 10, 1000, 2.0, 30.0))
    assert one.getvalue().startswith("progress: 10/10 updates (100%) | training | 500 steps/s | return 30.0 |")


def test_the_progress_line_prints_a_return_at_the_precision_its_scale_needs():
    from pgjax.running.progress import return_text

    assert [return_text(x) for x in (500.0, 21.64, 0.96, 0.2, 1.0, -0.028, -12.34)] == [
        "500.0", "21.6", "0.96", "0.2", "1.0", "-0.028", "-12.3"]
