"""The command line of `python -m pgjax.train` (and `pgjax.bench`), derived from the one declaration of each setting.

Every training setting is a field of `StaticConfig` or `Hyperparams`
(`pgjax.algo.config`) whose metadata holds its help and, for some, a short
alias; the run's own options (seeds, output, chunking, resuming) are the fields
of `RunOptions`. `train_arguments(preset, env)` builds the tyro dataclass of the
command line from them: a flag per field, named as the field (`--learning-rate`
for `learning_rate`), taking one or more values (several values sweep them),
its help the field's and its shown default the chosen preset's value.

A numeric setting (a float of `Hyperparams`, or `--episodes-per-update`) also
takes a range, `LO:HI` (uniform) or `LO:HI:log` (log-uniform), in place of its
values (`NumberOrRange`); `pgjax.commands.grid_settings` turns the settings given into
grid points, drawing from the ranges.

Short aliases (the one table of them, `ALIASES`):

    --lr        --learning-rate
    --value-lr  --value-learning-rate
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from pgjax.algo.config import (
    HYPERPARAMS_FIELDS,
    STATIC_FIELDS,
    Config,
    Hyperparams,
    StaticConfig,
    setting,
    setting_help,
    setting_type,
)
from pgjax.algo.presets import ENV_PRESETS, PRESETS, preset_config
from pgjax.commands.checks import check_name, check_run_folder, check_seeds
from pgjax.commands.shared import OPTIONAL_VALUE
from pgjax.results.tables import format_setting
from pgjax.running.devices import DEFAULT_COMPILE_CACHE
from pgjax.running.repack import RepackMode
from pgjax.running.search import Sampler

# settings that take one value (a sweep over environments or budgets is several commands)
SINGLE_VALUED = ("env", "num_updates")
# gymnax ids that --help does not list, and why: pgjax cannot train them here
UNTRAINABLE_ENVS = {"MNISTBandit-bsuite": "gymnax downloads its data set when it builds it"}
# settings whose one value is several words: `--env-kwargs size=8 symbolic=true` (no sweep)
WORDS_VALUED = ("env_kwargs",)
SETTING_CLASSES = (StaticConfig, Hyperparams)
ALIASES = {
    f.metadata["alias"]: "--" + f.name.replace("_", "-")
    for cls in SETTING_CLASSES for f in dataclasses.fields(cls) if "alias" in f.metadata
}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a sweep runs and where its results go (the settings of the runs themselves are a `Config`)."""

    num_seeds: int = setting(64, "Runs per grid point; run k of every grid point uses seed --seed + k (paired).")
    seed: int = setting(0, "PRNG seed of each grid point's first run.")
    num_samples: int | None = setting(None, "Draw this many points from the ranges of FLOAT... flags and "
                                            "--episodes-per-update (LO:HI uniform, LO:HI:log log-uniform), each "
                                            "crossed with the listed values: --lr 1e-3:1e-1:log --gamma 0.98 0.99 "
                                            "--num-samples 8 is 16 grid points.")
    sampler: Sampler = setting("sobol", "How --num-samples draws: scrambled Sobol' points, random ones, or "
                                        "Optuna's TPE in 8 rounds, each fit to the rounds before.")
    sampler_seed: int | None = setting(None, "Seed of --sampler's draws (default: --seed).")
    max_parallel: int | None = setting(None, "Most runs trained at once; more run in chunks, one compile "
                                             "(default: what half the free memory holds, at most 64 per CPU).")
    gradient_block_rows: int | None = setting(None, "Steps per gradient block (default: the device's); fewer "
                                                    "save memory, summing floats in another order.")
    checkpoint_every: int | None = setting(None, "Also checkpoint every this many updates (always at the end of "
                                                 "each chunk and on a stop).")
    out: Path | None = setting(None, "Run folder to write (default: runs/<env>_<preset>_<time>).")
    overwrite: bool = setting(False, "Replace the run already in --out.")
    resume: Path | None = setting(None, "Continue the interrupted run in this folder, with its own settings.")
    quiet: bool = setting(False, "Print no plan, notes or progress; only the results.")
    compile_cache: str = setting(os.environ.get("PGJAX_COMPILE_CACHE", DEFAULT_COMPILE_CACHE),
                                 "Compiled programs kept for later runs (off: none; environment variable "
                                 "PGJAX_COMPILE_CACHE).")
    distributed: bool = setting(False, "Spread the runs over the devices of several processes "
                                       "(jax.distributed.initialize()).")
    # "": the flag without DIR, the run folder's tensorboard/ (`pgjax.results.tracking.tensorboard_dir`)
    tensorboard: str | None = dataclasses.field(default=None, metadata={
        "help": "Log per-group curves and settings to TensorBoard in DIR (no DIR: the run folder's tensorboard/; "
                "extra [tensorboard]).", "optional_value": True})
    wandb: str | None = setting(None, "Log to this Weights & Biases project: a run per group and a table of "
                                      "every run (WANDB_MODE=offline: no network; extra [wandb]).")
    halving: int | None = setting(None, "Successive halving with this ETA (>= 2): the best 1/ETA of the grid "
                                        "points at each rung (by IQM over the seeds) go on to the next.")
    rungs: int | None = setting(None, "Rungs of --halving (default 3); rung k of K ends after "
                                      "num_updates*ETA^-(K-1-k) updates.")
    plan_only: bool = setting(False, "Print the plan, compiles and an estimated time; train and write nothing.")
    confirm_seeds: int | None = setting(None, "Retrain the best --confirm-top and the preset's configuration on "
                                              "this many fresh seeds (default: 16 for a search or --halving).")
    confirm_top: int = setting(3, "How many --confirm-seeds retrains.")
    repack: RepackMode = setting(
        "auto", "Smaller chunks for --halving's later rungs: auto where it saves more than a compile.")


# Characters Weights & Biases refuses in a project's name (its own check, made here before anything is written).
WANDB_FORBIDDEN = ("/", "\\", "#", "?", "%", ":")


def check_run_options(run: RunOptions) -> None:
    """Refuse run options that cannot work, before anything is drawn, compiled or written.

    Args:
      run: the parsed `RunOptions`.

    Raises:
      ValueError: one line naming the flag: --num-seeds, --max-parallel,
        --checkpoint-every or --gradient-block-rows < 1; seeds a JAX key cannot hold (--seed .. --seed +
        --num-seeds - 1, --sampler-seed: `pgjax.commands.checks.check_seeds`); an --out that is
        empty, the current folder or the root; an empty --compile-cache or --wandb.
    """
    for name in ("num_seeds", "max_parallel", "checkpoint_every", "gradient_block_rows", "confirm_top"):
        value = getattr(run, name)
        if value is not None and value < 1:
            raise ValueError(f"{flag(name)} must be >= 1, got {value}")
    check_seeds("--seed", run.seed, run.num_seeds, "--num-seeds")
    if run.confirm_seeds is not None and run.confirm_seeds < 0:
        raise ValueError(f"--confirm-seeds must be >= 0 (0: no confirmation), got {run.confirm_seeds}")
    if run.confirm_seeds:
        check_seeds("--seed", run.seed, run.num_seeds + run.confirm_seeds, "--num-seeds + --confirm-seeds")
    if run.sampler_seed is not None:
        check_seeds("--sampler-seed", run.sampler_seed)
    check_run_folder("--out", run.out)
    if run.plan_only and run.resume is not None:
        raise ValueError("--plan-only plans a new command; give it without --resume")
    if run.repack != "auto" and run.halving is None:
        raise ValueError(f"--repack {run.repack} sets how --halving packs a later rung's runs: give --halving ETA "
                         "with it")
    if not run.compile_cache.strip() and os.environ.get("PGJAX_COMPILE_CACHE") == run.compile_cache:
        raise ValueError(f"--compile-cache {run.compile_cache!r} (the environment variable PGJAX_COMPILE_CACHE's) "
                         "names no folder: set it to a folder or off, or give --compile-cache DIR")
    check_name("--compile-cache", run.compile_cache, "folder (or off)")
    check_name("--wandb", run.wandb, "project")
    if run.wandb is not None and any(c in run.wandb for c in WANDB_FORBIDDEN):
        raise ValueError(f"--wandb {run.wandb!r} cannot name a W&B project, whose name has none of "
                         f"{' '.join(WANDB_FORBIDDEN)}")


def _metavar(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return "{" + ",".join(str(c) for c in typing.get_args(kind)) + "}"
    if typing.get_origin(kind) is tuple:
        return "WIDTHS"
    return {float: "FLOAT", int: "INT", str: "ID", bool: "{True,False}"}.get(kind, "VALUE")


def _arg(cls: type, name: str, hint: str | None = None, metavar: str | None = None) -> Any:
    alias = {f.name: f for f in dataclasses.fields(cls)}[name].metadata.get("alias")
    return tyro.conf.arg(help=setting_help(cls, name), aliases=(alias,) if alias else None, metavar=metavar,
                         help_behavior_hint=hint)


@dataclasses.dataclass(frozen=True)
class NumberOrRange:
    """The tyro metadata of a numeric flag's values, read as text: numbers of `kind`, or a range (`LO:HI[:log]`).

    `pgjax.commands.shared.check_command_line` asks `value_check` what a value may be;
    `pgjax.commands.grid_settings.given_settings` turns the numbers into `kind` and keeps a range as its text.
    """

    kind: type

    def value_check(self, several: bool) -> tuple[Callable[[str], bool], str]:
        """(check of one value: a number of `kind` or anything with a ':', which `parse_range` then judges;
        what the flag expects, in words)."""
        def check(value: str) -> bool:
            if ":" in value:
                return True
            try:
                self.kind(value)
            except ValueError:
                return False
            return True

        words = ("whole numbers" if several else "a whole number") if self.kind is int else \
            ("numbers" if several else "a number")
        return check, words


def rangeable(name: str) -> bool:
    """Whether setting `name` takes a range: a float or int field that takes several values.

    Args:
      name: a field name (of `StaticConfig` or `Hyperparams`, or any other flag's).

    Returns:
      False for a name that is no setting, and for `SINGLE_VALUED`.
    """
    return (name in STATIC_FIELDS | HYPERPARAMS_FIELDS and name not in SINGLE_VALUED + WORDS_VALUED
            and setting_type(name)[1] in (float, int))


def setting_flags(names: typing.Sequence[str], defaults: Config, sweep: bool = True) -> list[tuple]:
    """`dataclasses.make_dataclass` fields for the settings `names`, each None unless given.

    A bool field becomes a switch (`--gradient-stats`, False unless given: one value for every grid point); a
    field of another type T becomes `tuple[T, ...] | None` (several values sweep it)
    where `sweep` and the setting is not in `SINGLE_VALUED`, else `T | None`;
    widths (`tuple[int, ...]` fields) are read as strings ("64,64", `pgjax.commands.grid_settings.parse_widths`),
    and so are the values of a `rangeable` setting (a number or a range,
    `NumberOrRange`; `pgjax.commands.grid_settings.given_settings` turns them into numbers). The help shows
    `defaults`'s value.
    """
    fields = []
    for name in names:
        cls, kind = setting_type(name)
        value_type = str if typing.get_origin(kind) is tuple else kind
        default = getattr(defaults.static if cls is StaticConfig else defaults.hparams, name)
        hint = f"(default: {format_setting(default)})" if default != "" else "(default: off)"
        if kind is bool:  # a switch, off unless given: `--gradient-stats` (a grid does not vary it)
            fields.append((name, Annotated[bool, _arg(cls, name, "")], dataclasses.field(default=False)))
            continue
        if name in WORDS_VALUED:
            annotation = Annotated[tuple[str, ...] | None, _arg(cls, name, hint, "KEY=VALUE...")]
        elif sweep and rangeable(name):
            element = Annotated[str, NumberOrRange(kind)]
            annotation = Annotated[tuple[element, ...] | None, _arg(cls, name, hint, _metavar(kind) + "...")]
        elif sweep and name not in SINGLE_VALUED:
            annotation = Annotated[tuple[value_type, ...] | None, _arg(cls, name, hint, _metavar(kind) + "...")]
        else:
            annotation = Annotated[value_type | None, _arg(cls, name, hint, _metavar(kind))]
        fields.append((name, annotation, dataclasses.field(default=None)))
    return fields


def run_option_flags() -> list[tuple]:
    """`make_dataclass` fields for every `RunOptions` field, with its help and default."""
    fields = []
    for f in dataclasses.fields(RunOptions):
        kind = typing.get_type_hints(RunOptions)[f.name]
        hint = "" if f.default is None or kind is bool else None
        metavar = "DIR" if "Path" in str(kind) else "INT" if "int" in str(kind) else None
        if f.metadata.get("optional_value"):  # `--flag` alone or `--flag VALUE` (`run_options` takes it apart)
            kind, metavar = tuple[str, ...] | None, "[DIR]"
        elif f.name == "wandb":
            metavar = "PROJECT"
        annotation = Annotated[kind, tyro.conf.arg(help=f.metadata["help"], help_behavior_hint=hint, metavar=metavar)]
        if f.metadata.get("optional_value"):
            annotation = Annotated[annotation, OPTIONAL_VALUE]
        fields.append((f.name, annotation, dataclasses.field(default=f.default)))
    return fields


PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]


def preset_flag(help: str) -> tuple:
    return ("preset", Annotated[PresetName, tyro.conf.arg(help=help)], dataclasses.field(default="default"))


def train_settings_names() -> list[str]:
    """The settings `python -m pgjax.train` has a flag for, in declaration order."""
    return [f.name for cls in SETTING_CLASSES for f in dataclasses.fields(cls)]


def train_arguments(preset: str = "default", env: str | None = None) -> type:
    """The tyro dataclass of `python -m pgjax.train`'s command line, its help showing `preset` on `env`'s values.

    Its fields: `preset`; `settings` (a flag per `train_settings_names()`,
    None where not given, and `num_episodes`); `run` (`RunOptions`'s).
    """
    try:
        defaults = preset_config(preset, env)
    except ValueError:
        defaults = preset_config("default")
    settings_fields = setting_flags(train_settings_names(), defaults)
    at = [name for name, *_ in settings_fields].index("num_updates") + 1
    settings_fields.insert(at, ("num_episodes", Annotated[int | None, tyro.conf.arg(
        help="Budget in episodes instead: num_updates = ceil(num_episodes / episodes_per_update).",
        help_behavior_hint="", metavar="INT")], dataclasses.field(default=None)))
    settings = dataclasses.make_dataclass("Settings", settings_fields, frozen=True)
    run = dataclasses.make_dataclass("Run", run_option_flags(), frozen=True)
    preset_help = ('Every setting\'s starting point: "seed-a", "seed-b" the two tutorials, "default" --env\'s own '
                   "(* above) or CartPole-v1's.")
    return dataclasses.make_dataclass("TrainArguments", [
        preset_flag(preset_help),
        ("settings", Annotated[settings, tyro.conf.OmitArgPrefixes], dataclasses.field(default_factory=settings)),
        ("run", Annotated[run, tyro.conf.OmitArgPrefixes], dataclasses.field(default_factory=run)),
    ], frozen=True)


def prescan(argv: list[str], flag: str) -> str | None:
    """The value given to `flag` in `argv` (`--flag V` or `--flag=V`), if any: to show its defaults in --help."""
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(flag + "="):
            return token.split("=", 1)[1]
    return None


def gymnax_environments() -> list[str]:
    """gymnax's ids pgjax builds (`pgjax.algo.suites.gymnax_builtins.registered_ids`: the built-in ones, and those
    registered at run time where gymnax is imported), read without importing gymnax (whose import starts JAX)."""
    from pgjax.algo.suites.gymnax_builtins import registered_ids

    return list(registered_ids())


def environments_text() -> str:
    """The environments pgjax can train, those with a preset of their own marked *."""
    names = [f"{name}*" if name in ENV_PRESETS else name for name in gymnax_environments()
             if name not in UNTRAINABLE_ENVS]
    return "environments (--env; * has its own default preset): " + ", ".join(names)


def run_options(args: Any) -> RunOptions:
    """The `RunOptions` of parsed arguments; ValueError for an optional-value flag given several values."""
    values = {f.name: getattr(args.run, f.name) for f in dataclasses.fields(RunOptions)}
    for f in dataclasses.fields(RunOptions):
        given = values[f.name]
        if f.metadata.get("optional_value") and isinstance(given, tuple):
            if len(given) > 1:
                raise ValueError(f"{flag(f.name)} takes at most one folder, got {len(given)}: {' '.join(given)}")
            values[f.name] = given[0] if given else ""
    return RunOptions(**values)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def with_flag_names(message: str) -> str:
    """A validation message with the settings' field names (`learning_rate`) written as flags (`--learning-rate`)."""
    aliases = {name: alias for alias, name in ALIASES.items()}
    names = [f.name for cls in SETTING_CLASSES for f in dataclasses.fields(cls)]
    # a name as a word, not inside another word, a quoted value or the phrase "a value baseline"
    pattern = r"(?<![-\w'])(?<!value )(" + "|".join(sorted(names, key=len, reverse=True)) + r")(?![\w'])"

    def as_flag(match: re.Match) -> str:
        name = flag(match.group(1))
        return f"{name} ({aliases[name]})" if name in aliases else name

    return re.sub(pattern, as_flag, message)


def settings_line(configs: Config | typing.Sequence[Config], continuous_actions: bool) -> str:
    """The settings of `configs` that apply, on one line, as flags: `--hidden 32 --learning-rate 0.01 0.03 ...`;
    a setting that differs between the configs (a sweep) shows each value once, in order; a switch that is on
    shows its flag alone (`--gradient-stats`)."""
    from pgjax.algo.validation import unused_settings

    configs = [configs] if isinstance(configs, Config) else list(configs)
    shown: dict[str, list[str]] = {}
    for config in configs:
        values = {**dataclasses.asdict(config.static), **{f.name: getattr(config.hparams, f.name)
                                                          for f in dataclasses.fields(config.hparams)}}
        unused = {"env", *unused_settings(config.static, continuous_actions)}
        unused |= {name for name in ("env_kwargs", "max_episode_steps", "weighting", "step_loss", "gradient_stats")
                   if not getattr(config.static, name)}  # off: no flag to show
        for name, value in values.items():
            text = " ".join(value) if name in WORDS_VALUED else "" if value is True else format_setting(value)
            if name not in unused and text not in shown.setdefault(name, []):
                shown[name].append(text)
    return " ".join(" ".join((flag(name), *filter(None, texts))) for name, texts in shown.items() if texts)
