"""Console entry points (`pgjax-train`, `pgjax-evaluate`): set XLA up before JAX starts, run, exit.

Importing `pgjax.train` or `pgjax.evaluate` starts JAX's backends (gymnax makes
arrays at import), after which `configure_cpu` can no longer give XLA one CPU
device per core; these functions configure first and import afterwards, as
`python -m pgjax.train` does at the top of its module.
"""

from __future__ import annotations

import os
import sys
import time


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


def prepare_train_process(argv: list[str]) -> None:
    """Before JAX starts its backends: one CPU device per core, and with --distributed, join the other processes."""
    from pgjax.parallel import configure_cpu, start_distributed

    configure_cpu()
    if "--distributed" in argv:
        start_distributed()


def train() -> None:
    """`pgjax-train`: `python -m pgjax.train` as a console script."""
    started = time.perf_counter()
    prepare_train_process(sys.argv)
    from pgjax import train as train_module

    exit_now(train_module.main(started=started))


def evaluate() -> None:
    """`pgjax-evaluate`: `python -m pgjax.evaluate` as a console script."""
    from pgjax.parallel import configure_cpu

    configure_cpu()
    from pgjax import evaluate as evaluate_module

    sys.exit(evaluate_module.main())
