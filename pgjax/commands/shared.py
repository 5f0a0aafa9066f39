"""What every entry point shares: XLA set up before JAX starts, parsing, consoles, stop requests, exit.

Importing `pgjax.train`, `pgjax.evaluate` or `pgjax.bench` starts JAX's backends
(gymnax makes arrays at import), after which `configure_cpu` can no longer give
XLA one CPU device per core; `prepare_process` runs first, at the top of each
entry module under `python -m`, and in the console scripts below before they
import it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import os
import re
import signal
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro
from rich.console import Console


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
    """One option of a command line: its names, the type of one value, whether it takes several (or none)."""

    names: tuple[str, ...]
    element: Any
    several: bool
    optional_value: bool = False


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
        element = base
        if typing.get_origin(base) in (typing.Union, types.UnionType):  # X | None
            element = next(a for a in typing.get_args(base) if a is not type(None))
        several = typing.get_origin(element) is tuple
        if several:
            element = typing.get_args(element)[0]
        aliases = tuple(a for extra in extras for a in (getattr(extra, "aliases", None) or ()))
        found.append(_Flag(("--" + name.replace("_", "-"), *aliases), element, several, OPTIONAL_VALUE in extras))
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
        if flag.element is bool:
            continue
        check, expected = _expects(flag.element, flag.several)
        if flag.several and not values and not flag.optional_value:
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
        annotation = Annotated[hints[f.name], tyro.conf.arg(help=f.metadata["help"],
                                                            aliases=(alias,) if alias else None)]
        fields.append((f.name, annotation, dataclasses.field(default=f.default, default_factory=f.default_factory)))
    return dataclasses.make_dataclass(cls.__name__, fields)


def parse(cls: type, argv: list[str] | None, module: str, description: str) -> Any:
    """tyro's parse of the command line into `cls`, for every entry point.

    `cls` is a tyro dataclass (`pgjax.commands.options.train_arguments`), or a plain
    dataclass of `setting` fields (`declared_with_settings`): that one is parsed
    through `arguments(cls)` and the result returned as a `cls`.

    `--version` prints `pgjax <version>`; a repeated flag, a value of the wrong
    kind and every other usage error become one line `error: ...` on stderr
    (SystemExit(2)); `--help` prints and raises SystemExit(0). The usage line
    names the command as the user called it (`command_name(module)`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--version" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        print(f"pgjax {version()}")
        raise SystemExit(0)
    plain = cls if declared_with_settings(cls) else None
    if plain is not None:
        cls = arguments(plain)
    flags = flags_of(cls)  # before tyro, which leaves the dataclass's hints unreadable to `flags_of`
    try:
        check_command_line(argv, flags)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            parsed = tyro.cli(cls, args=argv, prog=command_name(module), description=description,
                              config=(tyro.conf.FlagCreatePairsOff,))
    except SystemExit as exit_:
        if exit_.code != 2:
            sys.stderr.write(captured.getvalue())
            raise
        print(f"error: {_one_line(captured.getvalue(), argv, flags)}", file=sys.stderr)
        raise
    if plain is None:
        return parsed
    return plain(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(plain)})


def _stray_value(argv: list[str], value: str, flags: list[_Flag]) -> str | None:
    """For a value tyro found no place for: "`--flag` takes one value, got V1 V2" (or "takes no value" for a
    switch), naming the flag before it; None if no flag comes before it."""
    if value not in argv:
        return None
    i = argv.index(value)
    start = i
    while start > 0 and not argv[start - 1].startswith("--"):
        start -= 1
    if start == 0:
        return None
    flag = argv[start - 1].partition("=")[0]
    switch = any(f.element is bool and flag.replace("_", "-") in f.names for f in flags)
    return f"{flag} takes {'no value' if switch else 'one value'}, got {' '.join(argv[start:i + 1])}"


def _one_line(raw: str, argv: list[str] = (), known: list[_Flag] = ()) -> str:
    """The message of tyro's error box, on one line.

    Args:
      raw: what tyro wrote to stderr.
      argv: the command line, to name the flag a stray value followed (`_stray_value`).
      known: the command's flags (`flags_of`), to tell a switch from a flag that takes one value.

    Returns:
      The message, without "error: ".
    """
    lines = [line.strip(" │╭╮╰╯\t") for line in raw.splitlines()]
    lines = [line for line in lines if line]
    title = lines[0].strip("─ ") if lines else "invalid arguments"
    message = []
    for line in lines[1:]:  # up to the box's next rule (UTF-8 or ASCII drawing)
        if set(line) <= {"─", "-", " "}:
            if message:
                break
            continue
        if line.startswith(("For full helptext", "Argument helptext", "Got errors")):
            break
        message.append(line)
    text = " ".join(message) or title
    if text.startswith("Unrecognized options:"):  # "Unrecognized options: --x, 3", then "Perhaps you meant: --y"
        words = [word.rstrip(",") for word in text.split()[2:]]
        flags = [word for word in words if word.startswith("-")]
        if not flags:  # only values left over: a flag that takes one value was given several
            extra = [word for word in words if not word.startswith("Perhaps")][:3]
            which = _stray_value(list(argv), extra[0], list(known)) if extra else None
            return (f"unexpected value{'s' * (len(extra) > 1)} {', '.join(extra)}: "
                    f"{which or 'a flag that takes one value was given several'} (--help says which take several)")
        text = f"unrecognized option{'s' * (len(flags) > 1)} {', '.join(flags)}"
        suggestion = re.search(r"Perhaps you meant:[\s│|]*(--[\w-]+)", raw)
        if suggestion:
            text += f"; did you mean {suggestion.group(1)}?"
        text += " (--help lists them)"
    return text


# What a command that reads run folders reports as the user's error (one line, exit status 2), not as a crash.
FOLDER_ERRORS = (ValueError, IndexError, ImportError, OSError, KeyError)


def folder_error(error: Exception) -> int:
    """Print `error` (one of `FOLDER_ERRORS`) as one line on stderr; returns the exit status, 2.

    A KeyError is a field missing from a run folder's files, most likely written by another pgjax version.
    """
    if isinstance(error, KeyError):
        print(f"error: a run folder lacks {error} (written by another pgjax version?)", file=sys.stderr)
    else:
        print(f"error: {error}", file=sys.stderr)
    return 2


def run_command(main: Callable[[], int]) -> int:
    """`main()` as a process's command: output to a pipe closed early (`... --help | head -2`) ends quietly
    (exit 141, as SIGPIPE), and so does a Ctrl-C outside training's own handling (one line, exit 130) or
    during the teardown after `main` returns.

    With the process fast path `gc_freeze` on (`pgjax.running.devices`), the objects
    made by the imports so far are moved out of the garbage collector's sight
    first (`gc.freeze()`), so that its collections during tracing do not
    walk them again and again.
    """
    from pgjax.running.devices import process_fast_path_on

    if process_fast_path_on("gc_freeze"):
        gc.freeze()
    try:
        code = main()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # the interpreter's last flush must not fail again
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:  # a Ctrl-C outside training's own handling (`StopRequest`): no traceback
        print("aborted (Ctrl-C)", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:  # what is left is the process's teardown: a Ctrl-C or SIGTERM now ends it at once, quietly
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _end_at_once)


def _end_at_once(signum, frame) -> None:
    """A signal during the process's teardown: the command's work is done or saved; end now, exit 128 + signal."""
    os._exit(128 + signum)


def exit_process(code: int) -> None:
    """End the process with `code` (`sys.exit`); a multi-process run shuts its coordination service down first.

    After a stop or abort asked by a signal (`StopRequest`), the process ends at once (`os._exit`, output
    flushed): its work is saved, and the teardown has nothing left to save but could still be cut by a
    further Ctrl-C, or print what the libraries do then (orbax's threads, an asyncio loop already closed).
    """
    if _SIGNALLED:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    import jax

    if jax.distributed.is_initialized():
        jax.distributed.shutdown()
    sys.exit(code)


def prepare_process(argv: list[str]) -> None:
    """Set XLA up before JAX starts its backends, for every entry point (the one place that does).

    One CPU device per core and the CPU-only XLA options (`pgjax.running.devices.configure_cpu`);
    with --distributed in `argv`, join the other processes (`start_distributed`). A PGJAX_SPEED_OFF
    that names an unknown fast path ends the process with a one-line error (exit status 2).
    """
    from pgjax.running.devices import configure_cpu, start_distributed

    try:
        configure_cpu()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if "--distributed" in argv:
        start_distributed()


# What a second Ctrl-C (or SIGTERM) prints as it aborts a training command.
ABORTED = "aborted at once: the current segment is lost; resume from the last checkpoint with --resume"
# Set once a signal asked training to stop (`StopRequest`): the process then ends without its teardown
# (`exit_process`), where Python's own handlers are back and a further Ctrl-C would kill it mid-way.
_SIGNALLED = False


class StopRequest:
    """Turns the first SIGINT or SIGTERM into a request to stop at the next safe point.

    A second signal (either) raises KeyboardInterrupt at once. Python drops an
    exception raised inside a finalizer (a weakref callback, `__del__`) and
    reports it as "Exception ignored"; a KeyboardInterrupt that lands there is
    not lost: the process prints `ABORTED` and ends at once (exit 128 + the
    signal). Use as a context manager; the previous handlers come back on exit.
    """

    def __init__(self, console: Console):
        self.console = console
        self.signal: int | None = None
        self._previous = {}
        self._previous_hook = None

    def _unraisable(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and self.signal is not None:
            print(ABORTED, file=sys.stderr, flush=True)
            os._exit(128 + self.signal)
        self._previous_hook(unraisable)

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        global _SIGNALLED
        _SIGNALLED = True
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        again = "Ctrl-C again" if signum == signal.SIGINT else "a second SIGTERM or a Ctrl-C"
        self.console.print(f"{signal.Signals(signum).name}: stopping after the current segment and checkpointing "
                           f"({again} aborts at once, losing the current segment)", soft_wrap=True)

    def __enter__(self) -> StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = self._previous_hook
