"""A --distributed process's native output (XLA, gloo, JAX's coordination service) kept apart from pgjax's.

In a multi-process run, C++ writes to file descriptor 2 as processes join and
fail: "[Gloo] Rank 0 is connected ...", and, when another process dies, error
lines and a stack dump as JAX's coordination client ends this process
(SIGABRT), before Python can say anything. `keep_apart()` points file descriptor
2 at a pipe read by a small watcher process (`python -m
pgjax.commands.native_output LOG`) and leaves Python's `sys.stderr` on the
terminal: the native output goes to LOG, and if the process ends in a native
failure without having said why (`said()`), the watcher prints one line:

    error: JAX ended this process of the --distributed run: another process stopped or cannot be reached ...
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

SAID = b"\npgjax: the failure was said\n"  # written to the pipe once pgjax printed its own line
RESUME = b"\npgjax: resume with: "  # then the command that resumes this process's run, and a newline
# What native code prints as it ends a process: JAX's coordination client (absl's fatal log), a C++ exception
_FATAL = (b"Terminating process because the JAX distributed service detected fatal errors", b"terminate called",
          b"*** Check failure stack trace")

_log: str | None = None


def keep_apart() -> str:
    """Send this process's native output (file descriptor 2) to a new log through a watcher process; Python's
    `sys.stderr` stays where file descriptor 2 was. Returns the log's path (once per process)."""
    global _log
    if _log is not None:
        return _log
    handle, _log = tempfile.mkstemp(prefix=f"pgjax-native-{os.getpid()}-", suffix=".log")
    os.close(handle)
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    # its own session: a Ctrl-C at the terminal does not end it before the process it watches
    subprocess.Popen([sys.executable, "-m", "pgjax.commands.native_output", _log], stdin=read_end, stdout=terminal,
                     stderr=terminal, start_new_session=True, close_fds=True)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = open(terminal, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    return _log


def watched() -> bool:
    """Whether this process's native output goes to a watcher (`keep_apart`)."""
    return _log is not None


def tell_resume(command: str) -> None:
    """Tell the watcher how this process's run resumes (said in its line, should native code end the process)."""
    if watched():
        os.write(2, RESUME + command.encode() + b"\n")


def said() -> None:
    """Tell the watcher that pgjax printed its own line about the failure (it then prints none)."""
    if watched():
        os.write(2, SAID)


def watch(log: str) -> int:
    """The watcher: copy standard input to `log` until it ends; then, if it ended in a native failure that
    pgjax did not say, print one line naming the log."""
    seen = b""
    with open(log, "ab") as out:
        while chunk := sys.stdin.buffer.read1(65536):
            out.write(chunk)
            out.flush()
            seen = (seen + chunk)[-(1 << 20):]  # the last MiB: enough for the lines that matter
    if SAID in seen or not any(mark in seen for mark in _FATAL):
        return 0
    lost = _FATAL[0] in seen
    cause = ("JAX ended this process of the --distributed run: another process stopped or cannot be reached"
             if lost else "the process ended in native code (XLA, gloo or JAX's coordination service)")
    resume = seen.rpartition(RESUME)[2].partition(b"\n")[0].decode(errors="replace") if RESUME in seen else None
    then = (f"; its run folder keeps its last checkpoint: once every process can run, resume with: {resume}"
            if resume else "")
    print(f"error: {cause}{then} (its native output: {log})", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(watch(sys.argv[1]))
