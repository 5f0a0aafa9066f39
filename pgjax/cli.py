"""What every entry point shares: XLA set up before JAX starts, console scripts, stop requests, exit.

Importing `pgjax.train`, `pgjax.evaluate` or `pgjax.bench` starts JAX's backends
(gymnax makes arrays at import), after which `configure_cpu` can no longer give
XLA one CPU device per core; `prepare_process` runs first, at the top of each
entry module under `python -m`, and in the console scripts below before they
import it.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from rich.console import Console


def exit_now(code: int) -> None:
    """End the process with `code`, skipping Python's interpreter teardown.

    Every output is written and closed by then; the teardown only finalises
    modules, which took 0.5-0.7 s after a training run on the 2-core CPU of the
    README (gymnax, matplotlib, orbax, scipy). A multi-process run shuts its
    coordination service down first.
    """
    import jax

    if jax.distributed.is_initialized():
        jax.distributed.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def prepare_process(argv: list[str]) -> None:
    """Set XLA up before JAX starts its backends, for every entry point (the one place that does).

    One CPU device per core and the CPU-only XLA options (`pgjax.running.devices.configure_cpu`);
    with --distributed in `argv`, join the other processes (`start_distributed`).
    """
    from pgjax.running.devices import configure_cpu, start_distributed

    configure_cpu()
    if "--distributed" in argv:
        start_distributed()


def train() -> None:
    """`pgjax-train`: `python -m pgjax.train` as a console script."""
    started = time.perf_counter()
    prepare_process(sys.argv)
    from pgjax import train as train_module

    exit_now(train_module.main(started=started))


def evaluate() -> None:
    """`pgjax-evaluate`: `python -m pgjax.evaluate` as a console script."""
    prepare_process(sys.argv)
    from pgjax import evaluate as evaluate_module

    sys.exit(evaluate_module.main())


def plot() -> None:
    """`pgjax-plot`: `python -m pgjax.plot` as a console script."""
    from pgjax import plot as plot_module

    sys.exit(plot_module.main())


def bench() -> None:
    """`pgjax-bench`: `python -m pgjax.bench` as a console script."""
    prepare_process(sys.argv)
    from pgjax import bench as bench_module

    sys.exit(bench_module.main())


class StopRequest:
    """Turns the first SIGINT or SIGTERM into a request to stop at the next safe point.

    A second SIGINT raises KeyboardInterrupt at once. Use as a context manager;
    the previous handlers come back on exit.
    """

    def __init__(self, console: Console):
        self.console = console
        self.signal: int | None = None
        self._previous = {}

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        self.console.print(f"{signal.Signals(signum).name}: stopping after the current segment "
                           "(Ctrl-C again to abort at once)")

    def __enter__(self) -> StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
