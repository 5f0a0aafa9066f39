"""Memory and time of a recurrent policy's gradient: the whole-trajectory scan against the time slices.

    python experiments/recurrent_gradient_memory.py   # writes experiments/results/recurrent_gradient_memory.{json,md}

For a GRU policy (64 units, 8 observation features, 4 actions) and E = 8 episodes of T steps, every
episode as long as the buffer, this compiles `pgjax.algo.loss.make_policy_gradient` (one `lax.scan` over
the T rows: the reference path) and `pgjax.algo.fast.recurrent.make_policy_gradient` (slices of the
default gradient block's rows: the default), reads XLA's temporary bytes for each (`memory_analysis`),
checks that both give the same gradient, and times each call (median of 5, after a warm-up).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.algo import loss
from pgjax.algo.fast import recurrent
from pgjax.algo.fast.blocks import default_block_rows
from pgjax.algo.policy import RecurrentPolicy, categorical, make_apply_fn, recurrence
from pgjax.running.devices import cpu_model

RESULTS = Path(__file__).parent / "results"
EPISODES, OBS, ACTIONS, UNITS = 8, 8, 4, 64
STEP_LIMITS = (500, 2000, 8000)


def _median_seconds(fn, *args) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    module = RecurrentPolicy(ACTIONS, (UNITS,), "gru")
    params = module.init(jax.random.key(0), jnp.zeros(OBS))["params"]
    dist = categorical()
    plain = jax.jit(loss.make_policy_gradient(make_apply_fn(module), dist))
    sliced = jax.jit(recurrent.make_policy_gradient(recurrence(module), dist, True, default_block_rows()))
    rows = []
    for steps in STEP_LIMITS:
        keys = jax.random.split(jax.random.key(steps), 3)
        obs = jax.random.normal(keys[0], (steps, EPISODES, OBS))
        action = jax.random.randint(keys[1], (steps, EPISODES), 0, ACTIONS)
        weight = jax.random.normal(keys[2], (steps, EPISODES))
        valid = jnp.ones((steps, EPISODES), bool)
        args = (params, obs, action, weight, valid / valid.sum(), valid, 0.01)
        row = {"steps": steps, "episodes": EPISODES}
        grads = {}
        for name, fn in (("scan", plain), ("slices", sliced)):
            compiled = fn.lower(*args).compile()
            row[f"{name}_temp_bytes"] = int(compiled.memory_analysis().temp_size_in_bytes)
            row[f"{name}_seconds"] = _median_seconds(compiled, *args)
            grads[name] = compiled(*args)
        row["max_abs_difference"] = float(max(jnp.abs(a - b).max() for a, b in zip(
            jax.tree.leaves(grads["scan"]), jax.tree.leaves(grads["slices"]))))
        rows.append(row)
        print(row, flush=True)
    device = cpu_model()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recurrent_gradient_memory.json").write_text(json.dumps({"device": device, "rows": rows}, indent=1))
    lines = [f"Device: {device}, one XLA CPU device. GRU {UNITS} units, E = {EPISODES} episodes of T steps, "
             f"slices of {default_block_rows()} rows.", "",
             "| T | scan: XLA temp | slices: XLA temp | scan: s per gradient | slices: s per gradient |",
             "|---|---|---|---|---|"]
    for r in rows:
        scan, slices = r["scan_temp_bytes"] / 2**20, r["slices_temp_bytes"] / 2**20
        lines.append(f"| {r['steps']:,} | {scan:.1f} MiB | {slices:.1f} MiB | {r['scan_seconds']:.3f} "
                     f"| {r['slices_seconds']:.3f} |")
    (RESULTS / "recurrent_gradient_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
