"""What `python -m pgjax.train` prints around the training besides its progress and table: the notes and
the plan line before it, and the best group's line after it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from pgjax.running.sweep import Chunk


def print_notes(sweep: Any, continuous_actions: bool, console: Console) -> None:
    """The lines before the plan: the sweep's notes, the preset's, the sampler's balance and the rungs."""
    from pgjax.running.search import balance_note

    notes = [*sweep.notes, preset_note(sweep, continuous_actions),
             sweep.search and balance_note(sweep.search["num_samples"], sweep.search["sampler"])]
    for note in filter(None, notes):
        console.print(note, soft_wrap=True)
    if sweep.search and sweep.search["sampler"] == "tpe":
        sizes = sweep.search["rounds"]
        console.print(f"TPE (Optuna): {len(sizes)} rounds of {sizes[0]} points, trained one after another; the "
                      "first drawn at random, each later one fit to the scores so far (IQM of the final return "
                      "over the seeds)", soft_wrap=True)
    plan = sweep.halving
    if plan is not None:
        console.print(f"successive halving: rungs at {', '.join(map(str, plan.rung_updates))} updates; at each "
                      f"rung the best 1/{plan.eta} of the configurations (by IQM of the final return over "
                      "the seeds) go on", soft_wrap=True)


def preset_note(sweep: Any, continuous_actions: bool) -> str | None:
    """For an environment without a preset of its own under preset "default": which settings it trains with."""
    from pgjax.algo.presets import ENV_PRESETS
    from pgjax.commands import options

    env = sweep.points[0].config.static.env
    if sweep.preset != "default" or env in ENV_PRESETS:
        return None
    return (f"{env} has no preset of its own: training with CartPole-v1's default settings and "
            f"the learning rate measured for environments without one "
            f"({options.settings_line([p.config for p in sweep.points], continuous_actions)}); "
            "give flags to change them")


def print_plan(sweep: Any, groups: list, chunks: list[Chunk], estimates: list[dict] | None,
               console: Console) -> None:
    """One line for a `pgjax.commands.train.Sweep`: runs, compile groups, chunks x chunk size and the memory
    estimate per chunk (with the initial policy's padding where the trajectory buffers are large,
    `memory.initial_padding`)."""
    from pgjax.running import memory as plan_memory

    num_runs = len(sweep.points) * sweep.run.num_seeds
    sizes = sorted({c.size for c in chunks})
    memory = ""
    if estimates:
        group, _, buffers = plan_memory.biggest_chunk(estimates)
        padding = (plan_memory.initial_padding(groups[group][0].config)
                   if buffers >= plan_memory.PADDING_SHOWN_FROM_BYTES else None)
        memory = f" | {plan_memory.chunk_memory_text(estimates, padding)}"
    console.print(
        f"plan: {num_runs:,} runs ({len(sweep.points)} grid point{'s' * (len(sweep.points) > 1)} x "
        f"{sweep.run.num_seeds:,} seeds) | {len(groups)} compile group{'s' * (len(groups) > 1)} | "
        f"{len(chunks):,} chunk{'s' * (len(chunks) > 1)} x {'/'.join(str(s) for s in sizes)} runs{memory}",
        soft_wrap=True)


def best_flags(group: dict) -> str:
    """The flags that train `group` (a summary.json group) again: its varied settings at full precision,
    e.g. "--learning-rate 0.012345678918063641 --entropy-coef 0.0031"."""
    from pgjax.commands.options import flag

    def full(value) -> str:
        if isinstance(value, (list, tuple)):
            return ",".join(full(v) for v in value)
        return repr(value) if isinstance(value, float) else str(value)

    return " ".join(f"{flag(name)} {full(value)}" for name, value in group["varied"].items())


def print_best(summary: dict, console: Console) -> None:
    """With several groups, one line: the best by summary.json's "ranking" and its flags ready to paste."""
    from rich.markup import escape

    ranked = (summary.get("ranking") or {}).get("groups") or []
    if len(summary["groups"]) < 2 or not ranked:
        return
    best = next(group for group in summary["groups"] if group["index"] == ranked[0])
    statistics = best["statistics"] or {}
    iqm = statistics.get("iqm")
    shown = "-" if iqm is None else f"{iqm:.1f}"
    console.print(f"best: group {best['index']} (IQM {shown} over its {len(best['runs'])} runs; ties go to fewer "
                  f"steps to solve, then the mean: summary.json's ranking) | its settings: "
                  f"{escape(best_flags(best))}", soft_wrap=True)
