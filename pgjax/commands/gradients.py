"""`python -m pgjax.gradients`: a run's gradient estimators compared on the same fresh episodes.

    python -m pgjax.gradients runs/DIR                      # run 0's final policy, 1,024 episodes
    python -m pgjax.gradients runs/DIR --policy initial     # the same run's policy before its first update
    python -m pgjax.gradients runs/DIR --run 3 --episodes 256 --compare mypkg.weights:clipped --out grads.json

The work is `pgjax.results.gradient_stats`'; this module parses, calls and prints.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from pgjax.algo.config import setting
from pgjax.commands.checks import check_episodes_memory, check_seeds
from pgjax.commands.outputs import check_output_file, image, json_object
from pgjax.commands.process import prepare_process, run_command
from pgjax.commands.shared import FOLDER_ERRORS, folder_error, make_console, named_again, parse


@dataclasses.dataclass
class Args:
    """Compare a run's policy-gradient estimators (every weighting) on the same fresh episodes."""

    dir: tyro.conf.Positional[Path] = setting(dataclasses.MISSING, "Run folder written by `python -m pgjax.train`.")
    run: int = setting(0, "Run whose policy is measured.")
    policy: Literal["final", "initial"] = setting("final", "The run's final policy, or its initial one (rebuilt "
                                                           "from its seed: the policy before its first update).")
    episodes: int = setting(1024, "Fresh episodes every weighting's per-episode estimates are computed on, in "
                                  "batches of --batch-episodes (at least two batches).")
    batch_episodes: int | None = setting(None, "Episodes of one update: each batch is weighted as an update of "
                                               "this many episodes (default: the run's --episodes-per-update).")
    reference_batches: int = setting(16, "The reference gradient (reward-to-go weighting) is of this many times "
                                         "--episodes other episodes.")
    compare: tuple[str, ...] = setting((), "Your own step weightings (package.module:function, as pgjax.train's "
                                           "--weighting) to compare too.")
    resamples: int = setting(2000, "Bootstrap draws of the paired 95% intervals.")
    seed: int = setting(0, "PRNG seed: the episodes use fold_in(key(seed), 0), the reference fold_in(key(seed), 1), "
                           "the bootstrap NumPy's seed.")
    out: Path | None = setting(None, "The JSON file to write (default: the run folder's gradients.json).")
    figure: Path | None = setting(None, "The figure to write (default: the run folder's gradients.png).")
    env: str | None = named_again("environment factory (package.module:factory)")
    network: tuple[str, ...] | None = named_again("network factories (package.module:factory)")
    weighting: str | None = named_again("weighting function (package.module:function)")
    step_loss: str | None = named_again("step loss function (package.module:function)")


# What an earlier gradients.json holds: it may be written over (`pgjax.commands.outputs`).
GRADIENTS_RECORD = json_object('a gradients.json of pgjax.gradients (with "env", "run", "episodes" and "weightings")',
                               ("env", "run", "episodes", "weightings"))


def check_args(args: Args) -> None:
    """Refuse flags that cannot work before anything is read.

    Raises:
      ValueError: one line naming the flag (--episodes < 2, --batch-episodes < 1, --reference-batches < 1,
        --resamples < 1, a --compare that names no function, a --seed a JAX key cannot hold).
    """
    if args.episodes < 2:
        raise ValueError(f"--episodes must be >= 2 (a variance needs two batches), got {args.episodes}")
    if args.batch_episodes is not None and not 1 <= args.batch_episodes <= args.episodes // 2:
        raise ValueError(f"--batch-episodes must be in 1..{args.episodes // 2} (two batches of --episodes "
                         f"{args.episodes} at least), got {args.batch_episodes}")
    if args.reference_batches < 1:
        raise ValueError(f"--reference-batches must be >= 1, got {args.reference_batches}")
    if args.resamples < 1:
        raise ValueError(f"--resamples must be >= 1, got {args.resamples}")
    for own in args.compare:
        if ":" not in own:
            raise ValueError(f"--compare {own!r} names no function: give package.module:function")
    check_seeds("--seed", args.seed)


class Checked(NamedTuple):
    """What `_checked_folder` found: the folder, its summary, the run's config, the update's size and the outputs."""

    run_dir: Path
    summary: dict
    config: object
    batch_episodes: int
    out: Path
    figure: Path


def _checked_folder(args: Args) -> Checked:
    """The run folder, its summary, the run's config, the batch size and the two files to write, after every check
    that reads no parameters: the flags, --run, the outputs (`pgjax.commands.outputs`), the factories named again."""
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
    batch_episodes = args.batch_episodes or config.static.episodes_per_update
    if batch_episodes > args.episodes // 2:
        raise ValueError(f"run {args.run} updates on {batch_episodes} episodes: --episodes {args.episodes} holds "
                         f"fewer than two such batches; give --episodes {2 * batch_episodes} or more, or "
                         "--batch-episodes")
    return Checked(run_dir, summary, config, batch_episodes, out, figure)


def gradients_bytes_per_episode(num_params: int, config: object, num_weightings: int) -> int:
    """Memory one episode of the measurement of a policy of `num_params` parameters takes at its largest: every
    weighting's [P] float32 estimates, one estimator's float64 copy and its computation's (about 3 more float32
    arrays of P), and two episodes' steps (`pgjax.commands.evaluate.episode_bytes`)."""
    from pgjax.commands.evaluate import episode_bytes

    return (4 * num_weightings + 8 + 12) * num_params + 2 * episode_bytes(config.static)


def policy_of(args: Args, checked: Checked) -> tuple[object, object]:
    """(the policy's parameters, its value network's or None) that --policy names.

    "initial": `make_trainer(config).init` of the run's seed, as training began (the value network's too).
    "final": params.msgpack's, and value_params.msgpack's where the run learns a value.

    Raises:
      ValueError: a learned baseline's final value parameters the folder does not keep (one line), or a damaged
        file (as `pgjax.running.run_folder.loading`).
    """
    import jax

    from pgjax.algo.trainer import make_trainer
    from pgjax.algo.weights import is_learned
    from pgjax.running.run_folder import loading

    config = checked.config
    if args.policy == "initial":
        seed = checked.summary["runs"][args.run]["seed"]
        check_seeds(f"run {args.run}'s seed in summary.json", seed)
        state = make_trainer(config).init(jax.random.key(seed), config.hparams.as_arrays())
        return jax.tree.map(np.asarray, state.params), jax.tree.map(np.asarray, state.value_params)
    params = loading.load_params(checked.run_dir, args.run)
    learned = not config.static.weighting and is_learned(config.static.baseline)
    value_params = loading.load_value_params(checked.run_dir, args.run) if learned else None
    if learned and value_params is None:
        raise ValueError(f"run {args.run} weights by a learned value (baseline '{config.static.baseline}') and "
                         f"{checked.run_dir} keeps no value_params.msgpack (pgjax 1.0 wrote none): measure "
                         "--policy initial, or train the run again")
    return params, value_params


def gradients_record(args: Args, checked: Checked, measured: object, statistics: dict) -> dict:
    """gradients.json's content: the settings, and per weighting each statistic's point and interval."""
    from pgjax.results.gradient_stats import REFERENCE_WEIGHTING, STATISTICS
    from pgjax.results.stats import CONFIDENCE

    weightings = []
    for w, name in enumerate(measured.names):
        entry = {"name": name}
        for statistic in STATISTICS:
            values = statistics[statistic]
            entry[statistic] = {"point": values["point"][w], "ci95": [values["low"][w], values["high"][w]]}
        weightings.append(entry)
    num_batches, batch_episodes = measured.grads.shape[1:3]
    return {
        "env": checked.summary["env"], "run": args.run, "policy": args.policy, "seed": args.seed,
        "episodes": num_batches * batch_episodes, "batches": num_batches, "batch_episodes": batch_episodes,
        "parameters": measured.grads.shape[3], "mean_return": measured.returns.mean(),
        "reference": {"weighting": REFERENCE_WEIGHTING, "batches": args.reference_batches * num_batches,
                      "episodes": args.reference_batches * num_batches * batch_episodes,
                      "norm": float(np.linalg.norm(measured.reference.mean)),
                      "variance": float(measured.reference.variance)},
        "bootstrap": {"resamples": args.resamples, "confidence": CONFIDENCE, "interval": "percentile",
                      "paired": "each draw resamples the batch indices once, for every weighting"},
        "baseline_weighting": "run", "weightings": weightings,
    }


def measure(args: Args, console: Console) -> dict:
    """Measure run --run's estimators, print the table, write the JSON and the figure; returns the JSON's content."""
    import jax

    from pgjax.results.gradient_stats import (
        REFERENCE_WEIGHTING,
        estimators_of,
        measure_gradients,
        paired_statistics,
        plot_estimators,
    )
    from pgjax.running.run_folder import files

    checked = _checked_folder(args)
    params, value_params = policy_of(args, checked)
    num_batches, batch_episodes = args.episodes // checked.batch_episodes, checked.batch_episodes
    configs = estimators_of(checked.config, value_params is not None, args.compare)
    num_params = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
    check_episodes_memory(num_batches * batch_episodes,
                          gradients_bytes_per_episode(num_params, checked.config, len(configs)),
                          f"of a policy of {num_params:,} parameters")
    key = jax.random.key(args.seed)
    measured = measure_gradients(configs, configs[REFERENCE_WEIGHTING], params, jax.random.fold_in(key, 0),
                                 jax.random.fold_in(key, 1), num_batches, batch_episodes, args.reference_batches,
                                 value_params=value_params)
    statistics = paired_statistics(measured.grads, measured.reference.mean, measured.reference.variance,
                                   measured.names.index("run"), reps=args.resamples, seed=args.seed)
    result = gradients_record(args, checked, measured, statistics)
    files.write_json(checked.out, result)
    plot_estimators(measured.names, statistics, checked.figure,
                    f"{result['env']}, run {args.run}'s {args.policy} policy: {num_batches} updates of "
                    f"{batch_episodes} episodes (mean return {measured.returns.mean():.1f})")
    print_gradients(result, console)
    console.print(f"gradients in {checked.out}, figure in {checked.figure}")
    return result


def _estimate(entry: dict) -> str:
    """ "1.23e+03 [1.1e+03, 1.4e+03]": a point and its interval at 3 significant digits."""
    low, high = entry["ci95"]
    return f"{entry['point']:.3g} [{low:.3g}, {high:.3g}]"


COLUMNS = {"episode_variance": "variance per episode", "update_variance": "variance of an update",
           "snr": "SNR of an update", "cosine": "cosine with reference", "squared_error": "squared error",
           "squared_bias": "squared bias", "variance_ratio": "variance / run's",
           "snr_ratio": "SNR / run's", "cosine_difference": "cosine - run's"}


def print_gradients(result: dict, console: Console) -> None:
    """One row per weighting: each statistic with its interval."""
    reference = result["reference"]
    table = Table(title=f"{result['env']}, run {result['run']}'s {result['policy']} policy: gradient estimators on "
                        f"the same {result['batches']} updates of {result['batch_episodes']} episodes (95% CI, "
                        f"paired bootstrap; reference: {reference['weighting']} over {reference['episodes']:,} "
                        "episodes)")
    table.add_column("weighting", justify="left")
    for column in COLUMNS.values():
        table.add_column(column, justify="right")
    for entry in result["weightings"]:
        table.add_row(entry["name"], *(_estimate(entry[name]) for name in COLUMNS))
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
