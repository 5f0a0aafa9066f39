"""`python -m pgjax.evaluate`: returns of a run folder's trained policies on fresh episodes.

    python -m pgjax.evaluate runs/DIR                   # greedy and sampling returns of every run
    python -m pgjax.evaluate runs/DIR --gymnasium --render run0.gif

The work is `pgjax.results.evaluation`'s; this module parses, calls and prints.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from pgjax.algo.config import setting
from pgjax.commands.checks import check_episodes_memory, check_seeds
from pgjax.commands.outputs import check_output_file, image, json_object
from pgjax.commands.process import prepare_process, run_command
from pgjax.commands.shared import FOLDER_ERRORS, folder_error, make_console, named_again, parse
from pgjax.results import stats


@dataclasses.dataclass
class Args:
    """Evaluate the trained policies of a run folder on fresh episodes, greedy and sampling."""

    dir: tyro.conf.Positional[Path] = setting(dataclasses.MISSING, "Run folder written by `python -m pgjax.train`.")
    episodes: int = setting(20, "Fresh episodes per run and policy.")
    gymnasium: bool = setting(False, "Also evaluate every run's greedy policy on Gymnasium's reference environment "
                                     "(slow: Python steps).")
    render: Path | None = setting(None, "Write a GIF of one greedy Gymnasium episode of run --run to this file "
                                        "(ending in .gif; an existing file only if it is a GIF).")
    run: int = setting(0, "Run whose episode --render draws.")
    seed: int = setting(0, "PRNG seed: run k's JAX episodes use fold_in(key(seed), k); Gymnasium episode i resets "
                           "with seed + i.")
    env: str | None = named_again("environment factory (package.module:factory)")
    network: tuple[str, ...] | None = named_again("network factories (package.module:factory)")


# What an earlier evaluation.json holds: it may be written over (`pgjax.commands.outputs`).
EVALUATION_RECORD = json_object('an evaluation.json of pgjax.evaluate (with "env", "episodes", "seed" and "runs")',
                                ("env", "episodes", "seed", "runs"))


def check_args(args: Args) -> None:
    """Refuse flags that cannot work before anything is read: --episodes < 1, a --seed a JAX key cannot hold.

    Raises:
      ValueError: one line naming the flag.
    """
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    check_seeds("--seed", args.seed)


def episode_bytes(static: Any) -> int:
    """Memory one JAX episode of the environment of `static` (a StaticConfig) takes while evaluated: its
    rollout buffers (`pgjax.algo.rollout.Trajectory`: observation, action, reward and valid flag of each
    of its max_steps steps) and its two returns (float64)."""
    from pgjax.algo.envs import env_for

    spec = env_for(static)
    obs = int(np.prod(spec.obs_shape)) * np.dtype(spec.obs_dtype).itemsize
    action = 4 * (spec.num_actions if spec.action_kind == "continuous" else len(spec.action_nvec or (0,)))
    return spec.max_steps * (obs + action + 4 + 1) + 2 * 8


def evaluate_folder(args: Args, console: Console) -> dict:
    """Evaluate every run of `args.dir`, print the table and write evaluation.json; returns its content."""
    from pgjax.results.evaluation import EVALUATION_FILE, policy_callable, render_episode
    from pgjax.running.run_folder import files, loading

    run_dir, summary, group_configs = _checked_folder(args)
    configs, params, greedy, sampling = _evaluate_jax(args, run_dir, summary, group_configs)
    gym_returns = None
    if args.gymnasium:
        from pgjax.results.evaluation import evaluate_gymnasium

        gym_returns = np.stack([
            evaluate_gymnasium(policy_callable(configs[k], params[k]), configs[k].static.env, args.episodes, args.seed,
                               configs[k].static.max_episode_steps)
            for k in range(len(configs))
        ])
    result = evaluation_record(args, summary, greedy, sampling, gym_returns)
    if args.render:
        path, total = render_episode(policy_callable(configs[args.run], params[args.run]), args.render,
                                     configs[args.run].static.env, seed=args.seed,
                                     max_episode_steps=configs[args.run].static.max_episode_steps)
        result["render"] = {"path": path, "run": args.run, "return": total}
    kept = keep_earlier_results(result, loading.run_file(run_dir, EVALUATION_FILE))
    files.write_json(run_dir / EVALUATION_FILE, result)
    print_evaluation(result, console)
    if kept:
        console.print(f"kept from the earlier {EVALUATION_FILE} (same --episodes and --seed): {', '.join(kept)}")
    return result


def _checked_folder(args: Args) -> tuple[Path, dict, list]:
    """The run folder, its summary and each group's config, after every check that reads no parameters:
    the flags, --run, Gymnasium and pygame where asked for, the files it writes (evaluation.json and --render,
    `pgjax.commands.outputs`), the factories named again and the memory."""
    from pgjax.results.evaluation import EVALUATION_FILE, GYMNASIUM_HINT, _gymnasium
    from pgjax.running.run_folder import loading, trust
    from pgjax.running.run_folder.files import SUMMARY_FILE

    check_args(args)
    run_dir = loading.check_run_dir(args.dir)
    summary = loading.load_summary(run_dir)
    num_runs = len(summary["runs"])
    if not 0 <= args.run < num_runs:
        raise ValueError(f"--run {args.run} out of range: {run_dir} holds {num_runs} runs")
    if args.gymnasium or args.render:
        _gymnasium()
    check_output_file("the run folder's", loading.run_file(run_dir, EVALUATION_FILE), EVALUATION_RECORD)
    if args.render:
        if importlib.util.find_spec("pygame") is None:
            raise ImportError(f"--render needs pygame, Gymnasium's renderer: {GYMNASIUM_HINT}")
        if args.render.suffix.lower() != ".gif":
            raise ValueError(f"--render {args.render} is no GIF's name: give a file ending in .gif, e.g. "
                             f"--render {args.render.with_name(args.render.stem or 'episode')}.gif")
        check_output_file("--render", args.render, image("gif"))
    group_configs = [loading.run_config(summary, group["runs"][0], run_dir) for group in summary["groups"]]
    trust.confirm_configs(group_configs, str(run_dir / SUMMARY_FILE), args.env, args.network or ())
    # episode_bytes builds the environment: its factory is confirmed first
    check_episodes_memory(args.episodes, num_runs * episode_bytes(group_configs[0].static),
                          f"of {num_runs:,} run{'s' * (num_runs > 1)}")
    return run_dir, summary, group_configs


def _evaluate_jax(args: Args, run_dir: Path, summary: dict, group_configs: list) -> tuple[list, list, np.ndarray,
                                                                                         np.ndarray]:
    """Every run's JAX episodes, greedy and sampling: (configs, params, greedy, sampling returns [runs, episodes])."""
    import jax
    import jax.numpy as jnp

    from pgjax.results.evaluation import evaluate_runs
    from pgjax.running.run_folder import loading

    num_runs = len(summary["runs"])
    all_params = loading.load_params(run_dir)  # {"group<g>": leaves [R_g, ...]}, in the order of the group's runs
    configs, params = [None] * num_runs, [None] * num_runs
    greedy, sampling = np.zeros((num_runs, args.episodes)), np.zeros((num_runs, args.episodes))
    base_key = jax.random.key(args.seed)
    for group, config in zip(summary["groups"], group_configs):  # a network's groups share a compile
        runs = list(group["runs"])
        stacked = all_params[f"group{group['index']}"]
        keys = jax.vmap(lambda k: jax.random.fold_in(base_key, k))(jnp.asarray(runs))
        greedy[runs] = evaluate_runs(config, stacked, keys, episodes=args.episodes, greedy=True)
        sampling[runs] = evaluate_runs(config, stacked, keys, episodes=args.episodes, greedy=False)
        for position, k in enumerate(runs):
            configs[k], params[k] = config, jax.tree.map(lambda x: x[position], stacked)
    return configs, params, greedy, sampling


def evaluation_record(args: Args, summary: dict, greedy: np.ndarray, sampling: np.ndarray,
                      gym_returns: np.ndarray | None) -> dict:
    """evaluation.json's content (without the render): per run its returns, per group their statistics."""
    result = {"env": summary["env"], "episodes": args.episodes, "seed": args.seed, "runs": [], "groups": []}
    for k, run in enumerate(summary["runs"]):
        entry = {
            "run": k, "seed": run["seed"], "group": run["group"],
            "greedy_mean": greedy[k].mean(), "sampling_mean": sampling[k].mean(),
            "greedy_returns": greedy[k], "sampling_returns": sampling[k],
        }
        if gym_returns is not None:
            entry["gymnasium_greedy_mean"] = gym_returns[k].mean()
            entry["gymnasium_greedy_returns"] = gym_returns[k]
        result["runs"].append(entry)
    for group in summary["groups"]:
        runs = list(group["runs"])
        result["groups"].append({
            "index": group["index"], "runs": runs, "varied": group.get("varied", {}),
            "greedy": stats.mean_median_iqm(greedy[runs].mean(axis=1)),
            "sampling": stats.mean_median_iqm(sampling[runs].mean(axis=1)),
            "gymnasium_greedy": None if gym_returns is None else stats.mean_median_iqm(gym_returns[runs].mean(axis=1)),
        })
    return result


def keep_earlier_results(result: dict, path: Path) -> list[str]:
    """Copy into `result` what an earlier evaluation of the same folder computed and this one did not.

    The Gymnasium returns (--gymnasium) and the rendered episode (--render) of an
    earlier call with the same --episodes and --seed stay in evaluation.json when
    a later call leaves them out. Returns what was kept ("Gymnasium returns", "render").
    """
    from pgjax.running.run_folder import loading

    if not path.is_file():
        return []
    try:
        earlier = loading.load_json(path)
    except ValueError:
        return []
    runs, groups = earlier.get("runs"), earlier.get("groups")
    readable = isinstance(runs, list) and isinstance(groups, list) and all(
        isinstance(entry, dict) for entry in [*runs, *groups])
    if not readable:  # damaged, or of another version: computed afresh, nothing kept
        return []
    same = all(earlier.get(k) == result[k] for k in ("env", "episodes", "seed")) and \
        [r.get("run") for r in runs] == [r["run"] for r in result["runs"]]
    if not same:
        return []
    kept = []
    with_gym = all("gymnasium_greedy_mean" in r for r in earlier["runs"])
    if with_gym and not any("gymnasium_greedy_mean" in r for r in result["runs"]):
        for entry, old in zip(result["runs"], earlier["runs"]):
            entry["gymnasium_greedy_mean"] = old["gymnasium_greedy_mean"]
            entry["gymnasium_greedy_returns"] = old["gymnasium_greedy_returns"]
        for group, old in zip(result["groups"], earlier["groups"]):
            group["gymnasium_greedy"] = old.get("gymnasium_greedy")
        kept.append("Gymnasium returns")
    if "render" in earlier and "render" not in result:
        result["render"] = earlier["render"]
        kept.append("render")
    return kept


def _with_interval(agg: dict) -> str:
    """ "IQM 0.96 (95% CI 0.95 to 0.97), mean 0.96": at the decimals the values need (`return_decimals`)."""
    from pgjax.results.tables import format_estimate, format_return, return_decimals

    decimals = return_decimals([agg["iqm"], *(agg["iqm_ci95"] or ()), agg["mean"]])
    return (f"IQM {format_estimate(agg['iqm'], agg['iqm_ci95'], '95% CI ', decimals)}, "
            f"mean {format_return(agg['mean'], decimals)}")


def print_evaluation(result: dict, console: Console) -> None:
    """One table row per run and one aggregate line per group; returns at the decimals their scale needs
    (`pgjax.results.tables.return_decimals`, one count for the table)."""
    from pgjax.results.tables import format_return, return_decimals

    with_gym = any("gymnasium_greedy_mean" in r for r in result["runs"])
    table = Table(title=f"{result['env']}: mean return over {result['episodes']} fresh episodes per run")
    columns = ["run", "seed", "group", "greedy", "sampling", *(["Gymnasium greedy"] if with_gym else [])]
    for column in columns:
        table.add_column(column, justify="right")
    names = ("greedy_mean", "sampling_mean", *(["gymnasium_greedy_mean"] if with_gym else []))
    decimals = return_decimals([run[name] for run in result["runs"] for name in names], tell_apart=False)
    for run in result["runs"]:
        row = [str(run["run"]), str(run["seed"]), str(run["group"]),
               *(format_return(run[name], decimals) for name in names)]
        table.add_row(*row)
    console.print(table)
    for group in result["groups"]:
        varied = "".join(f"{name}={value}, " for name, value in group["varied"].items())
        line = (f"group {group['index']} ({varied}{len(group['runs'])} runs) | "
                f"greedy {_with_interval(group['greedy'])} | sampling {_with_interval(group['sampling'])}")
        if group["gymnasium_greedy"] is not None:
            line += f" | Gymnasium greedy {_with_interval(group['gymnasium_greedy'])}"
        console.print(line)
    if "render" in result:
        render = result["render"]
        console.print(f"greedy episode of run {render['run']} (return {render['return']:.0f}) in {render['path']}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(Args, argv, "pgjax.evaluate", __doc__.split("\n")[0])
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    from pgjax.results.evaluation import EVALUATION_FILE

    console = make_console()
    try:
        evaluate_folder(args, console)
    except FOLDER_ERRORS as error:
        return folder_error(error)
    console.print(f"evaluation in {args.dir / EVALUATION_FILE}")
    return 0


if __name__ == "__main__":
    prepare_process(sys.argv)  # XLA set up before anything starts JAX's backends
    sys.exit(run_command(main))
