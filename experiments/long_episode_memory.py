"""The memory plan on a 10,000-step environment: the estimate against XLA's figure and the process's peak,
the padding of the initial policy's episodes, and the advice followed.

    python experiments/long_episode_memory.py   # writes experiments/results/long_episode_memory.{json,md}

The environment is gymnax's CartPole-v1 with a 10,000-step limit (`long_cartpole` below, what a user's
factory would return). Each case trains 16 seeds, 16 episodes per update, 4 updates, in one chunk
(`pgjax.running.sweep.train_sweep`), in a fresh process (so the peak resident memory is the case's own):

- "estimate": the plan's bytes for the chunk (runs x run bytes + devices x gradient block), as the plan line
  prints it;
- "XLA": the compiled segment's arguments, outputs and temporaries (`memory_analysis`), summed over devices;
- "peak RSS growth": the process's peak resident memory (`ru_maxrss`) less what it held before training.

Then a device said to hold a quarter of one uncapped run (and its gradient block) gets the advice, and the
advice's --max-episode-steps is trained in the same way: XLA's figure per run must be under that budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SEEDS, EPISODES, UPDATES, LIMIT = 16, 16, 4, 10_000


def long_cartpole():
    """CartPole-v1 under a 10,000-step limit, as a user's factory returns it: (env, params)."""
    import gymnax

    env, params = gymnax.make("CartPole-v1")
    return env, params.replace(max_steps_in_episode=LIMIT)


def _case(cap: int) -> dict:
    """One case in this process: train, then report the plan, XLA's figure and the peak RSS growth."""
    import dataclasses
    import resource

    import pgjax

    pgjax.configure_cpu()  # the CPU devices and flags `python -m pgjax.train` takes

    from pgjax.algo.presets import PRESETS
    from pgjax.running import footprint, grid, memory, sweep

    base = PRESETS["default"]
    static = dataclasses.replace(base.static, env="long_episode_memory:long_cartpole", episodes_per_update=EPISODES,
                                 num_updates=UPDATES, max_episode_steps=cap)
    config = dataclasses.replace(base, static=static)
    groups = grid.compile_groups(grid.expand_grid(config))
    padding = memory.initial_padding(config)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _, info = sweep.train_sweep(groups, SEEDS, 0, max_parallel=SEEDS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    (estimate,) = info["memory_estimate"]
    planned = estimate["chunk_size"] * estimate["run_bytes"] + info["devices"] * estimate["device_bytes"]
    one_run = estimate["run_bytes"] + estimate["device_bytes"]  # one run and its gradient block, per device
    budget = one_run / 4  # the advice for a device that holds a quarter of that
    advice = memory.fitting_advice("too big", static, estimate["run_bytes"], info["devices"],
                                   int(budget * info["devices"] / footprint.USABLE_FRACTION))
    return {"cap": cap, "chunks": info["chunks"], "devices": info["devices"], "estimate_bytes": planned,
            "xla_bytes": info["memory_bytes"], "peak_rss_growth_bytes": peak - before,
            "initial_padding": padding, "one_run_bytes": one_run, "quarter_budget_bytes": budget,
            "advice_for_a_quarter": advice}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(_case(int(sys.argv[2]))))
        return

    def run(cap: int) -> dict:
        out = subprocess.run([sys.executable, __file__, "--case", str(cap)], check=True, capture_output=True,
                             text=True, timeout=1800, cwd=Path(__file__).parent)
        return json.loads(out.stdout.strip().splitlines()[-1])

    uncapped = run(0)
    print(uncapped, flush=True)
    cap = int(uncapped["advice_for_a_quarter"].split("--max-episode-steps ")[1].split()[0].replace(",", ""))
    capped = run(cap)
    print(capped, flush=True)
    budget = uncapped["quarter_budget_bytes"]
    rows = [uncapped, capped]
    from pgjax.running.devices import cpu_model

    device = cpu_model()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "long_episode_memory.json").write_text(json.dumps({"device": device, "budget_bytes": budget,
                                                                  "rows": rows}, indent=1))
    mib = 2**20
    lines = [f"Device: {device}, {uncapped['devices']} XLA CPU devices. CartPole-v1 under a {LIMIT:,}-step limit, "
             f"{SEEDS} seeds x {EPISODES} episodes per update, one chunk.", "",
             "| episode cap | estimate | XLA | estimate / XLA | peak RSS growth | estimate / RSS | initial padding |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cap'] or 'none'} | {r['estimate_bytes'] / mib:.0f} MiB | {r['xla_bytes'] / mib:.0f} MiB "
                     f"| {r['estimate_bytes'] / r['xla_bytes']:.2f} | {r['peak_rss_growth_bytes'] / mib:.0f} MiB "
                     f"| {r['estimate_bytes'] / max(1, r['peak_rss_growth_bytes']):.2f} | {r['initial_padding']:.1%} |")
    per_run = capped["xla_bytes"] / SEEDS  # XLA's figure for the chunk, per run (the gradient blocks shared out)
    lines += ["", f"Advice when a device holds a quarter of one uncapped run ({budget / mib:.1f} MiB of "
              f"{uncapped['one_run_bytes'] / mib:.1f} MiB): `{uncapped['advice_for_a_quarter']}`. With "
              f"`--max-episode-steps {cap}` XLA's figure is {per_run / mib:.1f} MiB per run, "
              f"{'under' if per_run <= budget else 'OVER'} the budget."]
    (RESULTS / "long_episode_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
