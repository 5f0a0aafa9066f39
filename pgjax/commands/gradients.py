"""`python -m pgjax.gradients`: a run's gradient estimators compared on the same fresh episodes.

    python -m pgjax.gradients runs/DIR                      # run 0's final policy, 1,024 episodes
    python -m pgjax.gradients runs/DIR --run 3 --episodes 256 --reference-batches 8 --out grads.json

The work is `pgjax.results.gradient_stats`'; this module parses, calls and prints.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from pgjax.algo.config import setting
from pgjax.commands.checks import check_seeds
from pgjax.commands.outputs import check_output_file, image, json_object
from pgjax.commands.process import prepare_process, run_command
from pgjax.commands.shared import FOLDER_ERRORS, folder_error, make_console, parse


@dataclasses.dataclass
class Args:
    """Compare a run's policy-gradient estimators (every weighting) on the same fresh episodes."""

    dir: tyro.conf.Positional[Path] = setting(dataclasses.MISSING, "Run folder written by `python -m pgjax.train`.")
    run: int = setting(0, "Run whose final policy is measured.")
    episodes: int = setting(1024, "Fresh episodes (one batch) every weighting's per-episode estimates are "
                                  "computed on (at least 2).")
    reference_batches: int = setting(16, "Batches of --episodes other episodes whose mean gradient (reward-to-go "
                                         "weighting) is the reference.")
    resamples: int = setting(2000, "Bootstrap draws of the paired 95% intervals.")
    seed: int = setting(0, "PRNG seed: the episodes use fold_in(key(seed), 0), the reference fold_in(key(seed), 1), "
                           "the bootstrap NumPy's seed.")
    out: Path | None = setting(None, "The JSON file to write (default: the run folder's gradients.json).")
    figure: Path | None = setting(None, "The figure to write (default: the run folder's gradients.png).")
    env: str | None = setting(None, "The environment factory (package.module:factory) the folder was trained on, "
                                    "named again: a run folder is data, and pgjax imports no code it names.")
    network: tuple[str, ...] | None = setting(None, "The network factories (package.module:factory) the folder was "
                                                    "trained with, named again (as --env).")
    weighting: str | None = setting(None, "The weighting function (package.module:function) the folder was trained "
                                          "with, named again (as --env).")
    step_loss: str | None = setting(None, "The step loss function (package.module:function) the folder was trained "
                                          "with, named again (as --env).")


# What an earlier gradients.json holds: it may be written over (`pgjax.commands.outputs`).
GRADIENTS_RECORD = json_object('a gradients.json of pgjax.gradients (with "env", "run", "episodes" and "weightings")',
                               ("env", "run", "episodes", "weightings"))
# The share of the host's free memory the estimates may take (the rest: XLA, the policy, the bootstrap's blocks).
MEMORY_FRACTION = 0.5


def check_args(args: Args) -> None:
    """Refuse flags that cannot work before anything is read.

    Raises:
      ValueError: one line naming the flag (--episodes < 2, --reference-batches < 1, --resamples < 1, a --seed a
        JAX key cannot hold).
    """
    if args.episodes < 2:
        raise ValueError(f"--episodes must be >= 2 (a variance needs two episodes), got {args.episodes}")
    if args.reference_batches < 1:
        raise ValueError(f"--reference-batches must be >= 1, got {args.reference_batches}")
    if args.resamples < 1:
        raise ValueError(f"--resamples must be >= 1, got {args.resamples}")
    check_seeds("--seed", args.seed)


def _checked_folder(args: Args) -> tuple[Path, dict, object, Path, Path]:
    """The run folder, its summary, the run's config and the two files to write, after every check that reads
    no parameters: the flags, --run, the outputs (`pgjax.commands.outputs`), the factories named again, a
    learned baseline (its value network's parameters are not kept in a run folder)."""
    from pgjax.algo.weights import is_learned
    from pgjax.results.gradient_stats import GRADIENTS_FIGURE, GRADIENTS_FILE
    from pgjax.running.run_folder import loading, trust
    from pgjax.running.run_folder.files import SUMMARY_FILE

    check_args(args)
    run_dir = loading.check_run_dir(args.dir)
    summary = loading.load_summary(run_dir)
    num_runs = len(summary["runs"])
    if not 0 <= args.run < num_runs:
        raise ValueError(f"--run {args.run} out of range: {run_dir} holds {num_runs} runs")
    out = args.out if args.out is not None else loading.run_file(run_dir, GRADIENTS_FILE)
    figure = args.figure if args.figure is not None else loading.run_file(run_dir, GRADIENTS_FIGURE)
    if out.resolve() == figure.resolve():
        raise ValueError(f"--out and --figure name the same file {out}: give two files")
    check_output_file("--out" if args.out is not None else "the run folder's", out, GRADIENTS_RECORD)
    if figure.suffix.lower() != ".png":
        raise ValueError(f"--figure {figure} is no PNG's name: give a file ending in .png")
    check_output_file("--figure" if args.figure is not None else "the run folder's", figure, image("png"))
    config = loading.run_config(summary, args.run, run_dir)
    trust.confirm_configs([config], str(run_dir / SUMMARY_FILE), args.env, args.network or (),
                          () if args.weighting is None else (args.weighting,),
                          () if args.step_loss is None else (args.step_loss,))
    if is_learned(config.static.baseline):
        raise ValueError(f"run {args.run} weights by a learned value (baseline '{config.static.baseline}'), whose "
                         "parameters a run folder does not keep: its estimators cannot be compared")
    return run_dir, summary, config, out, figure


def gradients_bytes(episodes: int, num_params: int, config: object) -> int:
    """Memory the measurement of `episodes` episodes of a policy of `num_params` parameters takes at its
    largest: every weighting's [N, P] float32 estimates, one estimator's float64 copy and its computation's
    (about 3 more [N, P] float32 arrays), and two batches of episodes (`pgjax.commands.evaluate.episode_bytes`)."""
    from pgjax.algo.gradients import compared_weightings
    from pgjax.commands.evaluate import episode_bytes

    num_weightings = len(compared_weightings(config, learned=False))
    return (4 * num_weightings + 8 + 12) * episodes * num_params + 2 * episodes * episode_bytes(config.static)


def check_memory(episodes: int, num_params: int, config: object) -> None:
    """Refuse --episodes whose estimates would not fit in half the host's free memory.

    Raises:
      ValueError: one line with the figures and the --episodes that fit.
    """
    from pgjax.running.devices import host_available_bytes
    from pgjax.running.footprint import format_bytes

    available = host_available_bytes()
    if available is None:
        return
    needed, budget = gradients_bytes(episodes, num_params, config), MEMORY_FRACTION * available
    if needed > budget:
        fit = int(budget // max(gradients_bytes(1, num_params, config), 1))
        raise ValueError(f"--episodes {episodes:,} of a policy of {num_params:,} parameters would need about "
                         f"{format_bytes(needed)} of memory and {format_bytes(available)} is free; --episodes "
                         f"{fit:,} or fewer fit")


def gradients_record(args: Args, summary: dict, names: list[str], statistics: dict, returns: np.ndarray,
                     num_params: int) -> dict:
    """gradients.json's content: the settings, and per weighting each statistic's point and interval."""
    from pgjax.results.gradient_stats import REFERENCE_WEIGHTING, STATISTICS
    from pgjax.results.stats import CONFIDENCE

    weightings = []
    for w, name in enumerate(names):
        entry = {"name": name}
        for statistic in STATISTICS:
            values = statistics[statistic]
            entry[statistic] = {"point": values["point"][w], "ci95": [values["low"][w], values["high"][w]]}
        weightings.append(entry)
    return {
        "env": summary["env"], "run": args.run, "seed": args.seed, "episodes": args.episodes,
        "parameters": num_params, "mean_return": returns.mean(),
        "reference": {"weighting": REFERENCE_WEIGHTING, "batches": args.reference_batches,
                      "episodes": args.reference_batches * args.episodes},
        "bootstrap": {"resamples": args.resamples, "confidence": CONFIDENCE, "interval": "percentile",
                      "paired": "each draw resamples the episode indices once, for every weighting"},
        "baseline_weighting": "run", "weightings": weightings,
    }


def measure(args: Args, console: Console) -> dict:
    """Measure run --run's estimators, print the table, write the JSON and the figure; returns the JSON's content."""
    import jax

    from pgjax.results.gradient_stats import measure_gradients, paired_statistics, plot_variances
    from pgjax.running.run_folder import files, loading

    run_dir, summary, config, out, figure = _checked_folder(args)
    params = loading.load_params(run_dir, args.run)
    check_memory(args.episodes, sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params)), config)
    key = jax.random.key(args.seed)
    names, grads, reference, returns = measure_gradients(config, params, jax.random.fold_in(key, 0),
                                                         jax.random.fold_in(key, 1), args.episodes,
                                                         args.reference_batches)
    statistics = paired_statistics(grads, reference, names.index("run"), reps=args.resamples, seed=args.seed)
    result = gradients_record(args, summary, names, statistics, returns, grads.shape[2])
    files.write_json(out, result)
    plot_variances(names, statistics["episode_variance"], figure,
                   f"{summary['env']}, run {args.run}: {args.episodes:,} episodes (mean return {returns.mean():.1f})")
    print_gradients(result, console)
    console.print(f"gradients in {out}, figure in {figure}")
    return result


def _estimate(entry: dict) -> str:
    """ "1.23e+03 [1.1e+03, 1.4e+03]": a point and its interval at 3 significant digits."""
    low, high = entry["ci95"]
    return f"{entry['point']:.3g} [{low:.3g}, {high:.3g}]"


def print_gradients(result: dict, console: Console) -> None:
    """One row per weighting: variance, cosine, squared error and variance ratio to the run's, with intervals."""
    table = Table(title=f"{result['env']}, run {result['run']}: gradient estimators on the same "
                        f"{result['episodes']:,} episodes (95% CI, paired bootstrap; reference: "
                        f"{result['reference']['weighting']} over {result['reference']['episodes']:,} episodes)")
    for column in ("weighting", "variance per episode", "cosine", "squared error", "variance / run's"):
        table.add_column(column, justify="left" if column == "weighting" else "right")
    for entry in result["weightings"]:
        table.add_row(entry["name"], *(_estimate(entry[name]) for name in
                                       ("episode_variance", "cosine", "squared_error", "variance_ratio")))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(Args, argv, "pgjax.gradients", __doc__.split("\n")[0])
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    console = make_console()
    try:
        measure(args, console)
    except FOLDER_ERRORS as error:
        return folder_error(error)
    return 0


if __name__ == "__main__":
    prepare_process(sys.argv)  # XLA set up before anything starts JAX's backends
    sys.exit(run_command(main))
