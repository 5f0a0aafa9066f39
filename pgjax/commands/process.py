"""The process of a command: XLA set up before JAX starts, Ctrl-C and SIGTERM turned into stop requests, exit.

Importing what trains or evaluates starts JAX's backends (gymnax makes arrays at
import), after which `configure_cpu` can no longer give XLA one CPU device per
core; `prepare_process` runs first, in each command's `__main__` block and in the
console scripts (`pgjax.commands.scripts`). `pgjax.commands.shared` re-exports
these names.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def run_command(main: Callable[[], int]) -> int:
    """`main()` as a process's command: output to a pipe closed early (`... --help | head -2`) ends quietly
    (exit 141, as SIGPIPE), and so does a Ctrl-C outside training's own handling (one line, exit 130) or
    during the teardown after `main` returns. A broken install (`pgjax.running.install`: a package that lacks a
    feature pgjax uses, or fails as pgjax's layers import it) is one line on stderr, "error: <package and
    what is wrong>: <the pip command that fixes it>", and exit status 2, not a traceback.

    The imports so far are frozen out of the garbage collector's sight first (`freeze_imports`).
    """
    freeze_imports()
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
    except (ImportError, AttributeError) as error:  # a broken install: one line, not a traceback
        from pgjax.running.install import broken_import

        broken = broken_import(error)
        if broken is None:
            raise
        print(f"error: {broken}", file=sys.stderr)
        return 2
    finally:  # what is left is the process's teardown: a Ctrl-C or SIGTERM now ends it at once, quietly
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _end_at_once)


def freeze_imports() -> None:
    """With the process fast path `gc_freeze` on, move every object made so far (the imports' modules,
    classes and functions) out of the garbage collector's sight (`gc.freeze()`, cumulative), so that its
    collections while tracing do not walk them again and again. A command calls it again once its late
    imports (JAX and the layers it uses) are done."""
    from pgjax.running.devices import process_fast_path_on

    if process_fast_path_on("gc_freeze"):
        gc.freeze()


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
    jax = sys.modules.get("jax")  # not imported: no processes to shut down (and no JAX to import for it)
    if jax is not None and jax.distributed.is_initialized():
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
