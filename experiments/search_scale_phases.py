"""Where the wall time of a training command goes, phase by phase, without a profiler's overhead.

    python experiments/search_scale_phases.py [TRAIN FLAGS...]
    python experiments/search_scale_phases.py --lr 1e-4:1e-1:log --entropy-coef 0:0.02 --num-seeds 16 \
        --halving 3 --num-samples 1024 --rungs 4 --quiet --compile-cache /tmp/empty-cache --out /tmp/scale

Runs `pgjax.train`'s `main` in this process (XLA set up as the command does it), with
wall-clock timers around the functions that train, confirm and write the results,
and prints the seconds spent in each (and how often it was called), largest first.
cProfile's overhead falls on pure-Python code (a JSON encoder, a bootstrap), so that its
shares overstate those phases; these timers add a few microseconds a call.
"""

from __future__ import annotations

import collections
import functools
import sys
import time

SECONDS: collections.Counter = collections.Counter()
CALLS: collections.Counter = collections.Counter()


def timed(owner, name: str) -> None:
    """Replace `owner.name` by the same function, timed (its seconds and calls counted)."""
    function = getattr(owner, name)
    label = f"{getattr(owner, '__name__', owner)}.{name}"

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[label] += time.perf_counter() - start
            CALLS[label] += 1

    setattr(owner, name, wrapper)


def main() -> int:
    start = time.perf_counter()
    from pgjax.commands import train

    train.prepare(sys.argv)  # as `python -m pgjax.train` does: XLA's CPU devices before JAX starts
    from pgjax.results import confirmation, exports, health, plots, run_record, summary
    from pgjax.running import confirm, halving, sweep, tpe
    from pgjax.running.run_folder import checkpoints, files
    for owner, name in [(halving, "train_halving"), (sweep, "train_sweep"), (tpe, "train_tpe"),
                        (checkpoints.ChunkCheckpoints, "save"), (confirm.Confirm, "train"),
                        (run_record, "write_results"), (summary, "summarise"), (files, "write_json"),
                        (files, "write_metrics"), (exports, "write_exports"), (plots, "plot_summary"),
                        (health, "run_warnings"), (confirmation, "tuning_ranking"), (summary, "halving_score"),
                        (summary, "run_entries"), (confirmation, "run_entries"), (summary, "summary_groups"),
                        (confirmation, "summary_groups")]:  # the last four: the names as each module calls them
        timed(owner, name)
    SECONDS["imports (pgjax.train and its layers)"] = time.perf_counter() - start
    status = train.main(sys.argv[1:], started=start)
    SECONDS["the whole command"] = time.perf_counter() - start
    for label, seconds in SECONDS.most_common():
        print(f"{seconds:8.1f} s {CALLS[label] or '':>6} {label}")
    return status


if __name__ == "__main__":
    sys.exit(main())
