"""Console scripts (`pgjax-train`, `-evaluate`, `-plot`, `-compare`, `-bench`,
`-gradients`): `python -m pgjax.<command>`.

Each sets XLA up (`pgjax.commands.process.prepare_process`) before it imports its entry
module, whose import starts JAX's backends, as `python -m` does at the top of
that module.
"""

from __future__ import annotations

import sys
import time

from pgjax.commands.process import exit_process, prepare_process, run_command


def train() -> None:
    """`pgjax-train`: `python -m pgjax.train` as a console script."""
    started = time.perf_counter()
    try:
        prepare_process(sys.argv)
    except ValueError as error:  # a --distributed that cannot start (`pgjax.commands.train.prepare`)
        print(f"error: --distributed: {error}", file=sys.stderr)
        sys.exit(2)
    from pgjax.commands import train as train_module

    exit_process(run_command(lambda: train_module.main(started=started)))


def evaluate() -> None:
    """`pgjax-evaluate`: `python -m pgjax.evaluate` as a console script."""
    prepare_process(sys.argv)
    from pgjax.commands import evaluate as evaluate_module

    sys.exit(run_command(evaluate_module.main))


def plot() -> None:
    """`pgjax-plot`: `python -m pgjax.plot` as a console script."""
    from pgjax.commands import plot as plot_module

    sys.exit(run_command(plot_module.main))


def compare() -> None:
    """`pgjax-compare`: `python -m pgjax.compare` as a console script."""
    from pgjax.commands import compare as compare_module

    sys.exit(run_command(compare_module.main))


def bench() -> None:
    """`pgjax-bench`: `python -m pgjax.bench` as a console script."""
    prepare_process(sys.argv)
    from pgjax.commands import bench as bench_module

    sys.exit(run_command(bench_module.main))


def gradients() -> None:
    """`pgjax-gradients`: `python -m pgjax.gradients` as a console script."""
    prepare_process(sys.argv)
    from pgjax.commands import gradients as gradients_module

    sys.exit(run_command(gradients_module.main))
