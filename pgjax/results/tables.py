"""Console tables of a training run's results (rich), from its summary.json contents."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _format_mean(mean: float, low: float, high: float, label: str = "") -> str:
    if math.isnan(mean):
        return "-"
    if math.isnan(low):
        return f"{mean:.1f}"
    return f"{mean:.1f} ({label}{low:.1f} to {high:.1f})" if label else f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def print_report(summary: dict, console: Console) -> None:
    """One row per grid point, the diverged runs, and an aggregate line."""
    groups = summary["groups"]
    varied = list(groups[0]["varied"])
    title = f"{summary['env']} - preset {summary['preset']} - {summary['num_groups']} x {summary['num_seeds']} runs"
    table = Table(title=title)
    columns = ("group", *varied, "runs", "solved", "final return [95% CI]", "IQM [95% CI]",
               "steps to solve", "diverged")
    for column in columns:
        table.add_column(column, justify="right")
    for group in groups:
        low, high = group["final_return_ci95"]
        sane = len(group["runs"]) - group["num_diverged"]
        solved = "-" if group["solved_fraction"] is None else f"{round(group['solved_fraction'] * sane)}/{sane}"
        statistics = group["statistics"] or {}
        iqm_low, iqm_high = statistics.get("iqm_ci95") or (math.nan, math.nan)
        iqm = statistics.get("iqm")
        steps = (statistics.get("solve_steps") or {}).get("median")
        table.add_row(
            str(group["index"]), *(_format_value(group["varied"][name]) for name in varied), str(len(group["runs"])),
            solved, _format_mean(group["final_return_mean"], low, high),
            _format_mean(math.nan if iqm is None else iqm, iqm_low, iqm_high),
            "-" if steps is None else f"{steps:,.0f}", str(group["num_diverged"]),
        )
    console.print(table)
    diverged = [(k, r) for k, r in enumerate(summary["runs"]) if r["diverged"]]
    if diverged:
        listed = ", ".join(f"{k} (group {r['group']}, seed {r['seed']})" for k, r in diverged[:10])
        more = f" and {len(diverged) - 10} more" if len(diverged) > 10 else ""
        console.print(f"[bold red]diverged[/]: runs {listed}{more}; left out of every aggregate")
    low, high = summary["final_return_ci95"]
    sane = summary["num_runs"] - summary["num_diverged"]
    if summary["solve_threshold"] is None:
        solved_text = "no solve threshold"
    elif sane:
        solved_text = f"solved {round(summary['solved_fraction'] * sane)}/{sane}"
    else:
        solved_text = "solved -"
    speed = summary["env_steps_per_second"]
    console.print(
        f"{solved_text} | final return {_format_mean(summary['final_return_mean'], low, high, '95% CI ')} | "
        f"{summary['env_steps_total']:,} env steps in {summary['train_seconds']:.2f} s = "
        f"{(speed or math.nan) / 1e6:.2f} M steps/s | compile {summary['compile_seconds']:.2f} s"
        + (" (compile cache)" if summary.get("compile_cache_hits") else "") + " | "
        f"wall {summary['wall_seconds']:.2f} s on {summary['devices']} x {summary['device_kind']}"
        + (f" | {summary['chunks']} chunks of up to {max(summary['chunk_sizes'])} runs"
           if summary["chunks"] > summary["compile_groups"] else "")
    )
