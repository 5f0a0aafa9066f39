"""The process of a command: XLA set up before JAX starts, Ctrl-C and SIGTERM turned into stop requests, a
failure while running said in one line, exit.

Importing what trains or evaluates can start JAX's backends (an environment
module that makes arrays at import), after which `configure_cpu` can no longer give XLA one CPU device per
core; `prepare_process` runs first, in each command's `__main__` block and in the
console scripts (`pgjax.commands.scripts`). `pgjax.commands.shared` re-exports
these names.

Every command ends with one of these exit statuses (docs/cli.md):

* 0: done;
* 1 (`FAILED`): a failure while running: a disk that filled, a device out of
  memory, an environment that raised, a process of a --distributed run that
  stopped. One line on stderr names the file or the call and the cause; the
  train command writes the traceback into the run folder's failure log (named
  in that line, `run_failed`), and the folder stays resumable;
* 2: bad input, refused in one line before anything is written;
* 128 + N: stopped by signal N (130: Ctrl-C, 143: SIGTERM), its work checkpointed.

While a run trains, `QuietLibraries` keeps what libraries print as they fail
(asyncio's "Event loop is closed" tracebacks from orbax's threads on a full
disk, absl's log records) out of the console: a run that fails writes them into
its log; a run that finishes prints them as before, once training is done.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import gc
import logging
import os
import re
import shlex
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pgjax
from pgjax.algo.config import SPEED_OFF_VARIABLE

if TYPE_CHECKING:
    from rich.console import Console


def run_command(main: Callable[[], int]) -> int:
    """`main()` as a process's command: output to a pipe closed early (`... --help | head -2`) ends quietly
    (exit 141, as SIGPIPE), and so does a Ctrl-C outside training's own handling (one line, exit 130) or
    during the teardown after `main` returns. A broken install (`pgjax.running.install`: a package that lacks a
    feature pgjax uses, or fails as pgjax's layers import it) is one line on stderr, "error: <package and
    what is wrong>: <the pip command that fixes it>", and exit status 2, not a traceback. An OSError (a full
    disk, a folder that went away) is one line naming the file and the cause, exit status 1 (`FAILED`).

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
    except OSError as error:  # a failure while running (a full disk, a folder gone): one line, exit status 1
        print(f"error: {describe(error)}", file=sys.stderr)
        return FAILED
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

    After a stop or abort asked by a signal (`StopRequest`), or a failure while training (`end_at_once`), the
    process ends at once (`os._exit`, output flushed): its work is saved, and the teardown has nothing left to
    save but could still be cut by a further Ctrl-C, or print what the libraries do then (orbax's threads, an
    asyncio loop already closed). A multi-process run stopped by a signal still shuts down together (every
    process reached the same stop); one that failed does not wait for processes that may be gone.
    """
    jax = sys.modules.get("jax")  # not imported: no processes to shut down (and no JAX to import for it)
    together = jax is not None and jax.distributed.is_initialized()
    if _END_AT_ONCE:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        if together and _END_AT_ONCE == "stopped":
            jax.distributed.shutdown()
        os._exit(code)
    if together:
        jax.distributed.shutdown()
    sys.exit(code)


def prepare_process(argv: list[str]) -> None:
    """Set XLA up before JAX starts its backends, for every entry point (the one place that does).

    One CPU device per core and the CPU-only XLA options (`pgjax.running.devices.configure_cpu`);
    with --distributed in `argv`, join the other processes (`start_distributed`). A PGJAX_SPEED_OFF
    that names an unknown fast path ends the process with a one-line error (exit status 2).
    """
    from pgjax.commands.native_output import keep_apart
    from pgjax.running.devices import configure_cpu, start_distributed

    try:
        configure_cpu()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if "--distributed" in argv:
        keep_apart()  # XLA's, gloo's and the coordination service's own output goes to a log
        start_distributed()


# What a second Ctrl-C (or SIGTERM) prints as it aborts a training command.
ABORTED = "aborted at once: the current segment is lost; resume from the last checkpoint with --resume"
# Set once a signal asked training to stop (`StopRequest`) or training failed (`end_at_once`): the process then
# ends without its teardown (`exit_process`), where Python's own handlers are back and a further Ctrl-C would kill
# it mid-way, orbax's threads may print what they raise, and a multi-process run's shutdown would wait for a
# process that is gone.
_END_AT_ONCE: str | None = None


def end_at_once(why: str = "failed") -> None:
    """Make `exit_process` end the process without its teardown (output flushed): training was "stopped" by a
    signal, or "failed" and said so in one line; its work is saved."""
    global _END_AT_ONCE
    _END_AT_ONCE = why


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
        end_at_once("stopped")
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


FAILED = 1

_NO_SPACE = ("no space left on device", "os_error_code='28'", "disk quota exceeded")
# What JAX raises in a process of a --distributed run whose peer stopped: gloo's collective, or the
# coordination service's RPCs.
_PEER_LOST = ("Gloo", "Connection closed by peer", "Connection reset by peer", "heartbeat", "CoordinationService",
              "coordination service")
_QUOTED_PATH = re.compile(r'"(/[^"]+)"')
_PGJAX = Path(pgjax.__file__).parent


class RunFailed(Exception):
    """A failure while a run trained: `str()` is the one line to print (what failed, where the folder stands,
    how to resume, where the traceback is)."""


def exit_status(error: BaseException) -> int:
    """The exit status of a command ended by `error`, said in one line: `FAILED` for a file that could not be
    written (`pgjax.running.run_folder.files.WriteFailed`: a full disk, a quota), else 2 (bad input)."""
    from pgjax.running.run_folder.files import WriteFailed

    return FAILED if isinstance(error, WriteFailed) else 2


def refused(error: BaseException) -> bool:
    """Whether `error` is pgjax refusing input (a ValueError, FileExistsError or ImportError that pgjax's own
    code raised: a damaged run folder, a checkpoint of another plan), not a failure while running. A file
    that could not be written (`WriteFailed`) is a failure."""
    from pgjax.running.run_folder.files import WriteFailed

    if not isinstance(error, (ValueError, FileExistsError, ImportError)) or isinstance(error, WriteFailed):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(_PGJAX)


def describe(error: BaseException) -> str:
    """What failed, in one line: the cause and the file or the call it happened in.

    Examples: "no space left on device writing /runs/a/summary.json", "another process of this
    --distributed run stopped (Gloo AllGather failed: ...)", "ZeroDivisionError: division by zero
    (in my_env.py:12, step)".
    """
    from pgjax.running.install import first_line
    from pgjax.running.run_folder.files import WriteFailed

    text, first = str(error), first_line(error) or type(error).__name__
    os_error = isinstance(error, OSError)
    if isinstance(error, WriteFailed):
        return first
    if no_space(error):
        path = error.filename if os_error and error.filename else next(iter(_QUOTED_PATH.findall(first)), None)
        return f"no space left on device writing {path}" if path else "no space left on device"
    if os_error:
        return f"{error.strerror or first}: {error.filename}" if error.filename else (error.strerror or first)
    if any(mark in text for mark in _PEER_LOST):
        return f"another process of this --distributed run stopped or cannot be reached ({first})"
    if "RESOURCE_EXHAUSTED" in text and "memory" in text.lower():
        return f"the device ran out of memory ({first})"
    embedded = _embedded_error(text)
    if embedded is not None:  # raised by Python called from the compiled program (a host callback)
        return embedded
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (in {Path(frames[-1].filename).name}:{frames[-1].lineno}, {frames[-1].name})" if frames else ""
    return f"{type(error).__name__}: {first}{where}"


_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (.+)$')


def _embedded_error(text: str) -> str | None:
    """The error a traceback inside `text` ends with, and where it was raised ("ZeroDivisionError: ... (in
    my_env.py:56, step, called from the compiled program)"): JAX puts a host callback's traceback in its own
    error's message. None where `text` holds no traceback."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line), None)
    if start is None:
        return None
    where = None
    for line in lines[start + 1:]:
        frame = _FRAME.match(line)
        if frame:
            where = frame.groups()
        elif line.strip() and not line[:1].isspace():  # the exception's line ends the traceback
            if where is None:
                return None
            file, number, function = where
            return f"{line.strip()} (in {Path(file).name}:{number}, {function}, called from the compiled program)"
    return None


def resume_command(run_dir: Path) -> str:
    """The command that resumes `run_dir` in this process: the fast paths turned off here, and in a
    multi-process run --distributed and the variables that say which process this is and where the
    coordinator listens (where they were set: JAX finds them by itself on SLURM, Open MPI, Kubernetes and
    Cloud TPU), to give again in each process."""
    import jax

    distributed = jax.process_count() > 1
    names = (SPEED_OFF_VARIABLE, *(("JAX_COORDINATOR_ADDRESS", "PGJAX_NUM_PROCESSES", "PGJAX_PROCESS_ID")
                                   if distributed else ()))
    words = [f"{name}={shlex.quote(os.environ[name])}" for name in names if os.environ.get(name)]
    words += ["python -m pgjax.train --resume", shlex.quote(str(run_dir)), *(["--distributed"] if distributed else [])]
    return " ".join(words)


def no_space(error: BaseException) -> bool:
    """Whether `error` is a full disk (ENOSPC, or orbax/tensorstore's words for it)."""
    return (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)) or any(
        mark in str(error).lower() for mark in _NO_SPACE)


def write_log(folder: Path, error: BaseException, held: list[str], process: str = "",
              lists: bool = True) -> Path | None:
    """Append `error`'s traceback, and what the libraries printed as it happened (`held`), to `folder`'s
    `FAILURE_LOG`, in one write, headed by the time, `process` ("process 1 of 2" in a multi-process run) and
    `describe(error)`. Returns the file, or None where it cannot be written (a full disk, a link leading
    outside the folder: `pgjax.running.run_folder.links.inside`).

    With `lists`, the file is listed in the folder's marker (for --overwrite): in a multi-process run, by
    process 0 only, which alone writes the marker.
    """
    from pgjax.running.run_folder.files import FAILURE_LOG, note_written
    from pgjax.running.run_folder.links import inside

    stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    text = "".join([f"--- {stamp}{' ' + process if process else ''}: {describe(error)}\n",
                    *traceback.format_exception(error), *held, "\n"])
    try:
        path = inside(folder, Path(folder) / FAILURE_LOG)  # a run folder is read and written inside itself only
        if lists:
            note_written(path)  # listed in the folder's marker: --overwrite removes it with the run's files
        with open(path, "a", encoding="utf-8") as log:
            log.write(text)
    except (OSError, ValueError):
        return None
    return path


class _Held(logging.Handler):
    """Keeps library log records (`QuietLibraries`)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class QuietLibraries:
    """Hold what libraries print while a run trains: exceptions their threads cannot raise (`sys.unraisablehook`,
    a KeyboardInterrupt excepted: `pgjax.commands.process.StopRequest` handles it) and log records of level
    WARNING and above. `release()` prints them as they would have been; `lines()` gives them as text for a log.

    Use as a context manager; the previous hook and log handlers come back on exit (unless `keep_holding`).
    """

    def __init__(self):
        self._keep = False
        self._unraisables: list[str] = []
        self._handler = _Held()
        self._previous_hook = None
        self._root_handlers: list[logging.Handler] = []

    def _unraisable(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            self._previous_hook(unraisable)
            return
        head = f"{unraisable.err_msg or 'Exception ignored in'}: {unraisable.object!r}\n"
        self._unraisables.append(head + "".join(traceback.format_exception(
            unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)))

    def __enter__(self) -> QuietLibraries:
        self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        root = logging.getLogger()
        self._root_handlers = list(root.handlers)
        for handler in self._root_handlers:
            root.removeHandler(handler)
        root.addHandler(self._handler)
        return self

    def keep_holding(self) -> None:
        """Hold on after the block, until the process ends: a run failed, and orbax's threads still print as they
        end (the failure log has the traceback already)."""
        self._keep = True

    def __exit__(self, *exc) -> None:
        if self._keep:
            return
        sys.unraisablehook = self._previous_hook
        root = logging.getLogger()
        root.removeHandler(self._handler)
        for handler in self._root_handlers:
            root.addHandler(handler)

    def lines(self) -> list[str]:
        """What was held, as text: each log record formatted as logging's default does, each exception with
        its traceback."""
        formatter = logging.Formatter(logging.BASIC_FORMAT)
        return [formatter.format(record) + "\n" for record in self._handler.records] + self._unraisables

    def release(self) -> None:
        """Print what was held, to the handlers and the stream it would have gone to, and forget it."""
        for record in self._handler.records:
            handlers = self._root_handlers or [logging.lastResort]
            for handler in handlers:
                if handler is not None and record.levelno >= handler.level:
                    handler.handle(record)
        for text in self._unraisables:
            sys.stderr.write(text)
        self._handler.records.clear()
        self._unraisables.clear()


def run_failed(error: Exception, out: Path, held: list[str]) -> RunFailed:
    """The `RunFailed` for `error`, raised while `out`'s run trained: its traceback and what the libraries
    printed are appended to the folder's failure log, and its one line says what failed, how to resume and
    where the log is (a folder whose config.json is gone, removed while it trained, cannot resume: it says so)."""
    import jax

    from pgjax.running.run_folder.files import CONFIG_FILE

    process = f"process {jax.process_index()} of {jax.process_count()}" if jax.process_count() > 1 else ""
    log = write_log(out, error, held, process, lists=jax.process_index() == 0)
    where = f"its traceback is in {log}" if log is not None else f"its traceback could not be written to {out}"
    if not (Path(out) / CONFIG_FILE).is_file():
        return RunFailed(f"{describe(error)}; {out}/{CONFIG_FILE} is gone: the run cannot be resumed ({where})")
    then = "free space, then resume" if no_space(error) else "resume"
    return RunFailed(f"{describe(error)}; {out} keeps every finished chunk and its last checkpoint: "
                     f"{then} with: {resume_command(out)} ({where})")


def say_failure(failed: RunFailed) -> int:
    """Print `failed`'s line on stderr (and tell a --distributed process's native-output watcher it was said),
    make the process end at once (`end_at_once`); returns the exit status, `FAILED`."""
    from pgjax.commands import native_output

    print(f"error: {failed}", file=sys.stderr, flush=True)
    native_output.said()
    end_at_once()  # the teardown would wait for a lost process, or print what orbax's threads raise
    return FAILED


def note_resume_command(run_dir: Path) -> None:
    """Tell a --distributed process's native-output watcher (`pgjax.commands.native_output`) the command that
    resumes `run_dir`, for the line it prints should native code end the process."""
    from pgjax.commands import native_output

    if native_output.watched():
        native_output.tell_resume(resume_command(run_dir))
