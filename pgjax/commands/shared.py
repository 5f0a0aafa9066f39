"""What every command shares: its version, console, parsing of the command line and refusals of bad flags.

The process's part (XLA set up before JAX starts, stop requests, exit) is
`pgjax.commands.process`; its names are importable from here too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro
from rich.console import Console

from pgjax.algo.config import setting
from pgjax.commands.process import (  # noqa: F401  (the process's names, for `from pgjax.commands.shared import`)
    ABORTED,
    StopRequest,
    exit_process,
    exit_status,
    prepare_process,
    run_command,
)


def named_again(code: str) -> Any:
    """The flag (a `setting`, default None) by which a command reading a run folder names again `code` the folder
    was trained with, e.g. "environment factory (package.module:factory)": a run folder is data, and pgjax imports
    no code it names (`pgjax.running.run_folder.trust`)."""
    if code.startswith("environment factory"):
        return setting(None, f"The {code} the folder was trained on, named again: a run folder is data, and pgjax "
                             "imports no code it names.")
    return setting(None, f"The {code} the folder was trained with, named again (as --env).")


def version() -> str:
    """pgjax's installed version (its package metadata), else `pgjax.__version__`."""
    import importlib.metadata

    try:
        return importlib.metadata.version("pgjax")
    except importlib.metadata.PackageNotFoundError:
        from pgjax import __version__

        return __version__


def command_name(module: str) -> str:
    """How the user called the command: its console script's name (`pgjax-train`), else `python -m <module>`."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return script if script.startswith("pgjax-") else f"python -m {module}"


def make_console() -> Console:
    """The console for stdout: a terminal's width on a terminal; elsewhere (a pipe, a file) no wrapping at all."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=100_000, soft_wrap=True)
    return console


# Annotated metadata of a `tuple[T, ...] | None` option that may be given without a value (`--tensorboard [DIR]`)
OPTIONAL_VALUE = "pgjax:optional-value"


@dataclasses.dataclass(frozen=True)
class _Flag:
    """One option of a command line: its names, the type of one value, whether it takes several (or none), and
    whether it is a switch (a plain `bool`: no value; `bool | None` takes True or False)."""

    names: tuple[str, ...]
    element: Any
    several: bool
    optional_value: bool = False
    switch: bool = False


def _unwrap(annotation: Any) -> tuple[Any, list]:
    """(type without Annotated, Annotated's metadata)."""
    extras = []
    while typing.get_origin(annotation) is Annotated:
        extras.extend(annotation.__metadata__)
        annotation = annotation.__origin__
    return annotation, extras


def flags_of(cls: type) -> list[_Flag]:
    """The options of a (possibly nested, prefix-free) tyro dataclass; positional fields left out."""
    found = []
    for name, annotation in typing.get_type_hints(cls, include_extras=True).items():
        base, extras = _unwrap(annotation)
        if any(extra is tyro.conf.Positional for extra in extras):
            continue
        if dataclasses.is_dataclass(base):
            found.extend(flags_of(base))
            continue
        element, optional = base, typing.get_origin(base) in (typing.Union, types.UnionType)
        if optional:  # X | None
            element = next(a for a in typing.get_args(base) if a is not type(None))
        several = typing.get_origin(element) is tuple
        if several:
            element = typing.get_args(element)[0]
        aliases = tuple(a for extra in extras for a in (getattr(extra, "aliases", None) or ()))
        found.append(_Flag(("--" + name.replace("_", "-"), *aliases), element, several, OPTIONAL_VALUE in extras,
                           switch=element is bool and not optional))
    return found


def _expects(element: Any, several: bool) -> tuple[Callable[[str], bool], str]:
    """(check of one value, what the flag expects, in words).

    An element `Annotated` with an object that has `value_check(several)` (e.g.
    `pgjax.commands.options.NumberOrRange`) answers for itself.
    """
    for extra in _unwrap(element)[1]:
        if hasattr(extra, "value_check"):
            return extra.value_check(several)
    if typing.get_origin(element) is Literal:
        choices = [str(c) for c in typing.get_args(element)]
        return (lambda v: v in choices), f"{'one or more of' if several else 'one of'} {', '.join(choices)}"

    def parses(kind: type) -> Callable[[str], bool]:
        def check(value: str) -> bool:
            try:
                kind(value)
            except ValueError:
                return False
            return True
        return check

    if element is bool:
        return (lambda v: v in ("True", "False")), "True or False"
    if element is float:
        return parses(float), "numbers" if several else "a number"
    if element is int:
        return parses(int), "whole numbers" if several else "a whole number"
    return (lambda v: True), "values" if several else "a value"


def check_command_line(argv: list[str], flags: list[_Flag]) -> None:
    """Raise ValueError (one line, naming the flag) for a repeated flag or a value of the wrong kind."""
    by_name = {name: flag for flag in flags for name in flag.names}
    seen: dict[_Flag, tuple[str, list[str]]] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            break
        if not token.startswith("--"):
            continue
        name, has_value, inline = token.partition("=")
        flag = by_name.get(name.replace("_", "-")) or by_name.get(name)
        if flag is None:
            continue
        values = [inline] if has_value else []
        while not has_value and i < len(argv) and not argv[i].startswith("--"):
            values.append(argv[i])
            i += 1
        if flag in seen:
            first, earlier = seen[flag]
            hint = f" (several values go after one flag: {first} {' '.join(earlier + values)})" if flag.several else ""
            twice = f"{' '.join(earlier) or 'once'}, then {' '.join(values) or 'again'}"
            raise ValueError(f"{first} is given twice ({twice}); give it once{hint}")
        seen[flag] = (name, values)
        if flag.switch:
            continue
        check, expected = _expects(flag.element, flag.several)
        if not values and not flag.optional_value:
            raise ValueError(f"{name} expects {expected}, got none")
        bad = [v for v in values if not check(v)]
        if bad:
            raise ValueError(f"{name} expects {expected}, got {', '.join(repr(v) for v in bad)}")


def declared_with_settings(cls: type) -> bool:
    """Whether `cls` is a plain dataclass of flags declared with `pgjax.algo.config.setting` (help in every
    field's metadata), which `arguments` turns into tyro's, rather than a tyro dataclass already."""
    return dataclasses.is_dataclass(cls) and all("help" in f.metadata for f in dataclasses.fields(cls))


def arguments(cls: type) -> type:
    """The tyro dataclass of a command whose flags are the fields of `cls`, declared with `setting`.

    A flag per field, named as the field (`--field-name`, plus the metadata's
    `alias`), with the field's type, default and help (`tyro.conf.arg(help=...)`,
    as `pgjax.commands.options` does for the training settings). A field annotated
    `tyro.conf.Positional[...]` stays positional; one declared
    `setting(dataclasses.MISSING, help)` is required.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = []
    for f in dataclasses.fields(cls):
        alias = f.metadata.get("alias")
        unset = f.default is None or f.default == ()  # the help says what none means: no "(default: None)"
        annotation = Annotated[hints[f.name], tyro.conf.arg(
            help=f.metadata["help"], aliases=(alias,) if alias else None,
            metavar=_several_metavar(hints[f.name]) or (_optional_metavar(hints[f.name]) if unset else None),
            help_behavior_hint="" if unset else None)]
        fields.append((f.name, annotation, dataclasses.field(default=f.default, default_factory=f.default_factory)))
    return dataclasses.make_dataclass(cls.__name__, fields)


def _optional_metavar(annotation: Any) -> str | None:
    """ "INT", "FLOAT", "STR" or "PATH" for an option `T | None` of one value (tyro's own: "{None}|INT")."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    names = {int: "INT", float: "FLOAT", str: "STR", Path: "PATH"}
    return names.get(args[0]) if len(args) == 1 and type(None) in typing.get_args(annotation) else None


def _several_metavar(annotation: Any) -> str | None:
    """ "STR..." for an option of several values (`tuple[str, ...]`, or it `| None`), which takes one or more
    (`check_command_line` refuses none; tyro's own "[STR [STR ...]]" would say none will do); None for the rest
    (tyro's own) and for a positional argument."""
    base, extras = _unwrap(annotation)
    if any(extra is tyro.conf.Positional for extra in extras):
        return None
    if typing.get_origin(base) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(base) if a is not type(None)]
        base = members[0] if len(members) == 1 else base
    if typing.get_origin(base) is not tuple:
        return None
    element, _ = _unwrap(typing.get_args(base)[0])
    return f"{getattr(element, '__name__', 'VALUE').upper()}..."


def parse(cls: type, argv: list[str] | None, module: str, description: str) -> Any:
    """tyro's parse of the command line into `cls`, for every entry point.

    `cls` is a tyro dataclass (`pgjax.commands.options.train_arguments`), or a plain
    dataclass of `setting` fields (`declared_with_settings`): that one is parsed
    through `arguments(cls)` and the result returned as a `cls`.

    `--version` prints `pgjax <version>`; `--help` prints tyro's help and raises SystemExit(0). Every usage
    error is one line `error: ...` on stderr and SystemExit(2): a repeated flag, a value of the wrong kind or
    none (`check_command_line`, before tyro, which takes the last of a repeated flag), what tyro does not
    recognise (its `return_unknown_args`: an unknown flag with the closest known one, a value no flag takes),
    and what else tyro refuses (a required positional argument left out; tyro prints nothing but --help,
    `console_outputs`). The usage line names the command as the user called it (`command_name(module)`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--version" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        print(f"pgjax {version()}")
        raise SystemExit(0)
    plain = cls if declared_with_settings(cls) else None
    if plain is not None:
        cls = arguments(plain)
    flags, positionals = flags_of(cls), required_positionals(cls)  # before tyro, which leaves the hints unreadable
    try:
        check_command_line(argv, flags)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    asks_help = any(token in ("-h", "--help") for token in argv[: argv.index("--") if "--" in argv else len(argv)])
    refused = io.StringIO()  # tyro prints nothing but the --help asked for; a box it draws on the way is dropped
    try:  # tyro hands back what it does not recognise
        with contextlib.redirect_stderr(refused):
            parsed, unknown = tyro.cli(cls, args=argv, prog=command_name(module), description=description,
                                       config=(tyro.conf.FlagCreatePairsOff,), return_unknown_args=True,
                                       console_outputs=asks_help)
    except SystemExit as exit_:
        if exit_.code == 2:
            print(f"error: {_refusal(argv, flags, positionals)}", file=sys.stderr)
        raise
    if unknown:
        print(f"error: {_unknown_text(unknown, argv, flags)}", file=sys.stderr)
        raise SystemExit(2)
    if plain is None:
        return parsed
    return plain(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(plain)})


def _stray_value(argv: list[str], value: str, flags: list[_Flag]) -> str | None:
    """For a value tyro found no place for: "`--flag` takes one value, got V1 V2" (or "takes no value" for a
    switch, given `--switch V` or `--switch=V`), naming the flag before it; None if no flag comes before it."""
    inline = [token.partition("=")[0] for token in argv if token.startswith("--") and token.partition("=")[2] == value]
    if value not in argv and inline:  # `--switch=value`
        return f"{inline[0]} takes no value, got {value}"
    if value not in argv:
        return None
    i = argv.index(value)
    start = i
    while start > 0 and not argv[start - 1].startswith("--"):
        start -= 1
    if start == 0 or argv[start - 1] == "--":
        return None
    flag = argv[start - 1].partition("=")[0]
    switch = any(f.switch and flag.replace("_", "-") in f.names for f in flags)
    return f"{flag} takes {'no value' if switch else 'one value'}, got {' '.join(argv[start:i + 1])}"


def _is_flag(token: str) -> bool:
    """Whether a token of the command line names a flag (`--name`, `-x`), not a value (`-1`, `-0.5`)."""
    return token.startswith("--") or (token.startswith("-") and token[1:2].isalpha())


def _unknown_text(unknown: list[str], argv: list[str], known: list[_Flag]) -> str:
    """The one line for what tyro did not recognise (`tyro.cli(return_unknown_args=True)`'s tokens): unknown
    flags, with the closest known one, or values that no flag takes (naming the flag before them)."""
    import difflib

    flags = [token.partition("=")[0] for token in unknown if _is_flag(token)]
    if not flags:  # only values left over: a flag that takes one value (or none) was given more
        extra = unknown[:3]
        which = _stray_value(list(argv), extra[0], known)
        return (f"unexpected value{'s' * (len(extra) > 1)} {', '.join(extra)}: "
                f"{which or 'no flag takes it'} (--help says which take several)")
    text = f"unrecognized option{'s' * (len(flags) > 1)} {', '.join(flags)}"
    names = {name.lstrip("-"): name for flag in known for name in flag.names}
    close = difflib.get_close_matches(flags[0].lstrip("-").lower(), list(names), n=1)
    if close:
        text += f"; did you mean {names[close[0]]}?"
    return text + " (--help lists them)"


def required_positionals(cls: type) -> list[str]:
    """The required positional arguments of a tyro dataclass, each as "METAVAR: help" (as --help's usage line
    names it: its metavar, else its type's name)."""
    found = []
    for f in dataclasses.fields(cls):
        base, extras = _unwrap(typing.get_type_hints(cls, include_extras=True)[f.name])
        if tyro.conf.Positional in extras and f.default is dataclasses.MISSING and \
                f.default_factory is dataclasses.MISSING:
            metavar = next((extra.metavar for extra in extras if getattr(extra, "metavar", None)),
                           getattr(base, "__name__", f.name).upper())
            helps = [extra.help for extra in extras if getattr(extra, "help", None)]
            found.append(f"{metavar}{': ' + helps[0] if helps else ''}")
    return found


def _refusal(argv: list[str], known: list[_Flag], positionals: list[str]) -> str:
    """The one line for a command line tyro refused otherwise (`check_command_line` took the flags' values):
    an unknown flag that took a positional argument's place, or a required positional argument left out
    (`required_positionals`)."""
    names = {"-h", "--help", *(name for flag in known for name in flag.names)}
    before = argv[: argv.index("--") if "--" in argv else len(argv)]
    unknown = [token for token in before if _is_flag(token) and token.partition("=")[0].replace("_", "-") not in names]
    if unknown:
        return _unknown_text(unknown, argv, known)
    if positionals:  # the flags took every value given (`check_command_line` counted them)
        return f"missing {positionals[0]} (required)"
    return f"the command line cannot be read: {' '.join(argv)} (--help lists the flags)"


# What a command that reads run folders reports as the user's error (one line, exit status 2), not as a crash.
FOLDER_ERRORS = (ValueError, IndexError, ImportError, OSError, KeyError)


def folder_error(error: Exception) -> int:
    """Print `error` (one of `FOLDER_ERRORS`) as one line on stderr; returns the exit status: 2, or 1 for an
    output that could not be written (`pgjax.commands.process.exit_status`).

    A KeyError is a field missing from a run folder's files, most likely written by another pgjax version.
    """
    if isinstance(error, KeyError):
        print(f"error: a run folder lacks {error} (written by another pgjax version?)", file=sys.stderr)
    else:
        print(f"error: {error}", file=sys.stderr)
    return exit_status(error)

