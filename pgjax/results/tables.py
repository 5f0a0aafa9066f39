"""Console tables of a training run's results (rich), from its summary.json contents."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# significant digits of a float setting in the report's table and plot labels (drawn values have many; JSON keeps all)
TABLE_DIGITS = 4
TABLE_TOP_ROWS = 20  # groups the table shows, best first; summary.json and runs.csv hold them all


def format_setting(value, digits: int = 6) -> str:
    """A setting's value as tables and plot labels show it, as its flag takes it: 0.01, relu, 64,64.

    Floats show `digits` significant digits (`format(value, "g")`'s 6 by default).
    """
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return ",".join(format_setting(v, digits) for v in value)
    return str(value)


def settings_label(settings: dict, names) -> str:
    """"lr=0.03, hidden=64,64": the settings `names` (in their order) of `settings`, as table cells show them
    (`TABLE_DIGITS`); "" for no names. What names a group in plot legends and comparison tables."""
    return ", ".join(f"{name}={format_setting(settings.get(name), TABLE_DIGITS)}" for name in names)


# The most decimals a return is printed with (a finer difference is noise at any reward scale pgjax meets).
MAX_RETURN_DECIMALS = 4


def return_decimals(values, tell_apart: bool = True) -> int:
    """The decimals to print returns with: what every table and line that prints returns uses.

    At least 1, and enough for two significant digits of the largest magnitude among `values` (a 0-1
    reward's 0.96 prints as 0.96, CartPole's 499.8 as 499.8); with `tell_apart`, more until the distinct
    values print distinct (an estimate and its interval ends: 0.963 [0.955, 0.970]); never more than
    `MAX_RETURN_DECIMALS`.

    Args:
      values: returns (floats; None and non-finite ones are left out).
      tell_apart: whether distinct values must print distinct (an estimate and its interval: True; a column
        of many runs' returns, whose every run differs a little: False).

    Returns:
      The number of decimals, 1 to `MAX_RETURN_DECIMALS`.
    """
    finite = sorted({float(v) for v in values if v is not None and math.isfinite(v)})
    scale = max((abs(v) for v in finite), default=0.0)
    decimals = 1 if scale == 0 else min(max(1, 1 - math.floor(math.log10(scale))), MAX_RETURN_DECIMALS)
    while tell_apart and decimals < MAX_RETURN_DECIMALS and len({f"{v:.{decimals}f}" for v in finite}) < len(finite):
        decimals += 1
    return decimals


def format_return(value: float | None, decimals: int | None = None) -> str:
    """A return as tables print it: `decimals` (default: `return_decimals([value])`) places; "-" for None/NaN."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{return_decimals([value]) if decimals is None else decimals}f}"


def format_estimate(point: float | None, interval: list | None, label: str = "", decimals: int | None = None) -> str:
    """ "499.8 [498.9, 500.0]" (or "499.8 (95% CI 498.9 to 500.0)" with a label); "-" without a point.

    The decimals: `decimals`, else `return_decimals` of the point and interval ends (0.96 [0.95, 0.97] on a 0-1
    reward, never "1.0 [1.0, 1.0]")."""
    if point is None or math.isnan(point):
        return "-"
    if decimals is None:
        decimals = return_decimals([point, *(interval or ())])
    if interval is None:
        return f"{point:.{decimals}f}"
    low, high = interval
    if label:
        return f"{point:.{decimals}f} ({label}{low:.{decimals}f} to {high:.{decimals}f})"
    return f"{point:.{decimals}f} [{low:.{decimals}f}, {high:.{decimals}f}]"


def print_report(summary: dict, console: Console) -> None:
    """Print one row per grid point, the diverged runs, a line over every run, and a line per warning
    (summary.json's "warnings", `pgjax.results.health`: "warning: ...").

    The settings that vary show `TABLE_DIGITS` significant digits (summary.json holds their full values).

    Args:
      summary: summary.json's contents (`pgjax.results.summary.summarise`); the
        intervals shown are its "statistics" ones, whose method its
        "interval_method" names (the table's caption repeats it).
    """
    from pgjax.running.progress import format_rate  # its module imports JAX: only once training has run

    groups = summary["groups"]
    varied = list(groups[0]["varied"])
    title = _title(summary)
    method = (summary.get("interval_method") or {}).get("returns", "percentile bootstrap over runs")
    groups, caption = _shown_groups(summary, f"final return: mean of each run's last 100 episodes; 95% CI: {method}")
    table = Table(title=title, caption=caption)
    halving = summary.get("halving")
    # the random policy's return: one line under the table, or a column where the groups' environments differ
    random_column = summary.get("random_policy") is None and any(g.get("random_policy") for g in groups)
    columns = ("group", *varied, *(["updates"] if halving else []), "runs", "solved",
               "mean final return [95% bootstrap CI]", "IQM [95% bootstrap CI]",
               *(["random policy"] if random_column else []), "steps to solve", "diverged")
    for column in columns:
        table.add_column(column, justify="right")
    for group in groups:
        sane = len(group["runs"]) - group["num_diverged"]
        solved = "-" if group["solved_fraction"] is None else f"{round(group['solved_fraction'] * sane)}/{sane}"
        statistics = group["statistics"] or {}
        solve = statistics.get("solve_steps") or {}
        steps = solve.get("median")
        table.add_row(
            str(group["index"]), *(format_setting(group["varied"][name], TABLE_DIGITS) for name in varied),
            *([f"{group['num_updates_trained']:,}"] if halving else []), str(len(group["runs"])),
            solved, format_estimate(statistics.get("mean"), statistics.get("mean_ci95")),
            format_estimate(statistics.get("iqm"), statistics.get("iqm_ci95")),
            *([_random_text(group.get("random_policy"))] if random_column else []),
            "-" if steps is None else f"{steps:,.0f} ({solve['count']}/{sane})", str(group["num_diverged"]),
        )
    console.print(table)
    if summary.get("random_policy"):
        random = summary["random_policy"]
        console.print(f"random policy: {_random_text(random)} (mean return of {random['episodes']:,} episodes of "
                      "uniformly random actions, legal ones where the environment masks them, with its standard error)",
                      soft_wrap=True)
    _print_diverged(summary["runs"], console)
    statistics = summary["statistics"] or {}
    sane = summary["num_runs"] - summary["num_diverged"]
    if summary["solve_threshold"] is None:
        solved_text = "no solve threshold"
    elif sane:
        solved_text = f"solved {round(summary['solved_fraction'] * sane)}/{sane}"
    else:
        solved_text = "solved -"
    speed = summary["env_steps_per_second"]
    restored = summary.get("resumed_env_steps") or 0
    trained = summary.get("env_steps_trained", summary["env_steps_total"])
    console.print(
        f"{solved_text} | mean final return "
        f"{format_estimate(statistics.get('mean'), statistics.get('mean_ci95'), '95% bootstrap CI ')} | "
        f"{trained:,} env steps in {summary['train_seconds']:.2f} s = "
        f"{format_rate(speed or math.nan)}"
        + (f" (and {restored:,} restored from checkpoints)" if restored else "")
        + f" | compile {summary['compile_seconds']:.2f} s"
        + (" (compile cache)" if summary.get("compile_cache_hits") else "") + " | "
        f"wall {summary['wall_seconds']:.2f} s on {summary['devices']} x {summary['device_kind']}"
        + (f" | {summary['chunks']} chunks of up to {max(summary['chunk_sizes'])} runs"
           if summary["chunks"] > summary["compile_groups"] else "")
    )
    if halving:
        print_halving(halving, console)
    if summary.get("confirmation"):
        print_confirmation(summary["confirmation"], console)
    for line in summary.get("warnings") or ():  # `pgjax.results.health`: a run that looks unable to learn
        console.print(f"[bold yellow]warning[/]: {escape(line)}", soft_wrap=True)


def _random_text(random: dict | None) -> str:
    """A random policy's return ({"mean", "stderr"}) as "0.16 ± 0.01"; "-" without one."""
    if random is None:
        return "-"
    decimals = return_decimals([random["mean"], random["mean"] + random["stderr"]])
    return f"{format_return(random['mean'], decimals)} ± {format_return(random['stderr'], decimals)}"


def _print_diverged(runs: list[dict], console: Console) -> None:
    """A line naming the diverged runs (the first 10), if any."""
    diverged = [(k, r) for k, r in enumerate(runs) if r["diverged"]]
    if diverged:
        listed = ", ".join(f"{k} (group {r['group']}, seed {r['seed']})" for k, r in diverged[:10])
        more = f" and {len(diverged) - 10} more" if len(diverged) > 10 else ""
        console.print(f"[bold red]diverged[/]: runs {listed}{more}; left out of every statistic")


def _title(summary: dict) -> str:
    """The table's title; after a confirmation it says the figures are the tuning seeds'."""
    title = f"{summary['env']} - preset {summary['preset']} - {summary['num_groups']} x {summary['num_seeds']} runs"
    if summary.get("confirmation"):  # the search's own figures, on the seeds that chose the winner
        first, last = summary["confirmation"]["tuning_seeds"]
        title += f" - tuning seeds {first}-{last}"
    return title


def _shown_groups(summary: dict, caption: str) -> tuple[list[dict], str]:
    """The table's groups, best first by summary.json's "ranking" (those it left out after), at most
    `TABLE_TOP_ROWS`; and `caption` with what the rows and their steps to solve are."""
    groups = summary["groups"]
    if summary["solve_threshold"] is not None:
        caption += ("; steps to solve: median env steps at which a run's last-100-episode mean first reached "
                    "the threshold, over the runs that reached it (a run that fell back below it counts)")
    ranking = (summary.get("ranking") or {}).get("groups")
    if ranking is not None and len(groups) > 1:
        by_index = {group["index"]: group for group in groups}
        groups = [by_index[i] for i in ranking] + [g for g in groups if g["index"] not in set(ranking)]
        caption += f"; rows best first: {summary['ranking']['rule']}"
    hidden = max(0, len(groups) - TABLE_TOP_ROWS)
    if hidden:
        caption += f"; the {hidden:,} other groups are in summary.json and runs.csv"
    return groups[:TABLE_TOP_ROWS], caption


def print_halving(halving: dict, console: Console) -> None:
    """Successive halving's outcome (summary.json's "halving"): rungs, survivors per rung, env steps saved."""
    kept = " -> ".join(str(len(s)) for s in halving["survivors"])
    full, saved = halving["env_steps_full_sweep"], halving["env_steps_saved"]
    share = f" ({saved / full:.0%})" if full else ""
    console.print(
        f"successive halving (ETA {halving['eta']}): rungs at {', '.join(map(str, halving['rung_updates']))} "
        f"updates | configurations per rung {kept} | best: group {halving['winner']} | {halving['env_steps']:,} "
        f"env steps against about {full:,} for the full sweep: {saved:,} saved{share}", soft_wrap=True)


def print_confirmation(confirmation: dict, console: Console) -> None:
    """The configurations trained again on fresh seeds (summary.json's "confirmation"), then the winner's line."""
    configurations = confirmation["configurations"]
    varied = list(configurations[0]["varied"])
    first, last = confirmation["seeds"]
    table = Table(title=f"confirmation - fresh seeds {first}-{last}", caption=(
        "IQM tuning: on the tuning seeds, which chose the winner (optimistic on average); the other figures on the "
        "fresh seeds alone; P(> reference): share of seeds on which the run beats the reference's, 95% percentile "
        "bootstrap over seed pairs"))
    for column in ("group", *varied, "role", "IQM tuning", "IQM [95% bootstrap CI]",
                   "mean final return [95% bootstrap CI]", "P(> reference) [95% CI]", "diverged"):
        table.add_column(column, justify="right")
    for entry in configurations:
        statistics = entry["statistics"] or {}
        table.add_row(
            "-" if entry["tuning_group"] is None else str(entry["tuning_group"]),
            *(format_setting(entry["varied"][name], TABLE_DIGITS) for name in varied), entry["role"],
            format_estimate(entry["tuning_iqm"], None), format_estimate(statistics.get("iqm"),
                                                                          statistics.get("iqm_ci95")),
            format_estimate(statistics.get("mean"), statistics.get("mean_ci95")),
            "-" if "reference" in entry["role"] else
            _probability_text(entry["versus_reference"]["probability_of_improvement"]),
            str(entry["num_diverged"]))
    console.print(table)
    winner = confirmation["winner"]
    better, difference = winner["probability_of_improvement"], winner["difference"]
    versus = "" if better["probability"] is None or "reference" in configurations[0]["role"] else (
        f"; against the reference on the same seeds: P(better) {_probability_text(better)}, mean difference "
        f"{format_estimate(difference['mean'], difference['ci95'])}")
    console.print(f"confirmed: group {winner['tuning_group']} (the tuning's best) IQM "
                  f"{format_estimate(winner['iqm'], winner['iqm_ci95'])} on {last - first + 1} fresh seeds (on the "
                  f"tuning seeds {format_estimate(winner['tuning_iqm'], None)}){versus}", soft_wrap=True)


def _probability_text(entry: dict) -> str:
    """A probability entry ({"probability", "ci95"}) as "0.44 [0.19, 0.69]"; "-" without one."""
    if entry["probability"] is None:
        return "-"
    return f"{entry['probability']:.2f}" + ("" if entry["ci95"] is None else " [{:.2f}, {:.2f}]".format(*entry["ci95"]))
