"""Two costs of a large CPU search outside training, and what cheaper ways of paying them would save.

    python experiments/search_overheads.py [--repeats 3] [--saves 20] [--out experiments/results/search_overheads]

A 1,024 x 16 halving search on 2 CPU cores spends seconds in two places besides
training (`experiments/search_scale_phases.py`): a checkpoint at the end of each
of its 192 chunks, and a bootstrap interval for each of its 1,024 groups. This
script times, in one process, alternating, `repeats` times:

- Checkpoints of a real chunk (128 CartPole runs after 4 updates: its state and
  metrics, 29 arrays, from `python -m pgjax.train --num-seeds 128 --num-updates 4`),
  each save in a new folder as a chunk's is: pgjax's save (`ChunkCheckpoints`:
  orbax, synchronous); the same bytes packed into one array, saved alike (orbax's
  cost per array); pgjax's save made while a jitted computation of about a
  chunk's training time runs (what overlapping a save with the next chunk would
  hide, against the two one after the other); and `numpy.savez` to a temporary
  file renamed into place (a floor: no library's bookkeeping).
- The statistics of 1,024 groups of 16 runs (final returns drawn like a CartPole
  search's, many at 500): `group_statistics` per group, as summary.json makes
  them, against the same bootstrap over groups stacked [G, 16] in a few calls
  (each group gets the resamples it gets alone), checked equal bitwise.

Writes OUT.json and OUT.md: milliseconds per save and seconds per 1,024 groups.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as scipy_stats

from pgjax.results.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE, _stacked_mean_median_iqm, group_statistics
from pgjax.running.devices import configure_cpu, cpu_isa, cpu_model
from pgjax.running.run_folder.checkpoints import ChunkCheckpoints, chunk_dir


def chunk_tree(scratch: Path) -> dict:
    """{"state": ..., "metrics": ...} of a real chunk: 128 runs after 4 updates, NumPy leaves."""
    import orbax.checkpoint as ocp

    out = scratch / "chunk-source"
    subprocess.run([sys.executable, "-m", "pgjax.train", "--num-seeds", "128", "--num-updates", "4", "--quiet",
                    "--compile-cache", "off", "--max-parallel", "128", "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    manager = ocp.CheckpointManager(chunk_dir(out, 0).absolute(), item_handlers=ocp.StandardCheckpointHandler())
    tree = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())
    manager.close()
    return jax.tree.map(np.asarray, tree)


def save_pgjax(folder: Path, tree: dict) -> None:
    checkpoints = ChunkCheckpoints(folder)
    checkpoints.save(4, tree["state"], tree["metrics"])
    checkpoints.close()


def save_one_array(folder: Path, tree: dict) -> None:
    packed = np.concatenate([leaf.view(np.uint8).reshape(-1) for leaf in jax.tree.leaves(tree)])
    save_pgjax(folder, {"state": {"packed": packed}, "metrics": {}})


def save_npz(folder: Path, tree: dict) -> None:
    folder.mkdir(parents=True)
    buffer = io.BytesIO()
    np.savez(buffer, **{str(i): leaf for i, leaf in enumerate(jax.tree.leaves(tree))})
    temporary = folder / "4.npz.tmp"
    temporary.write_bytes(buffer.getvalue())
    os.replace(temporary, folder / "4.npz")


@jax.jit
def stand_in_chunk(x: jax.Array) -> jax.Array:
    """A computation of about a chunk's training time (a scan of matrix products), x [devices, 400, 400] spread
    over the devices as a chunk's runs are."""
    return jax.vmap(lambda y: jax.lax.scan(lambda c, _: (jnp.tanh(c @ c.T @ c * 1e-3), None), y, None,
                                           length=60)[0])(x)


def time_checkpoints(tree: dict, scratch: Path, repeats: int, saves: int) -> dict:
    devices = jax.devices()
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ("runs",)),
                                          jax.sharding.PartitionSpec("runs"))
    x = jax.device_put(jnp.full((len(devices), 400, 400), 0.01), sharding)
    stand_in_chunk(x).block_until_ready()
    for i in range(3):  # warm up orbax and the file system
        save_pgjax(scratch / f"warm-{i}", tree)
    seconds: dict[str, list[float]] = {name: [] for name in
                                       ("pgjax's save", "one array", "numpy.savez, renamed", "chunk stand-in alone",
                                        "stand-in, then pgjax's save", "pgjax's save during the stand-in")}
    for repeat in range(repeats):
        for name, save in (("pgjax's save", save_pgjax), ("one array", save_one_array),
                           ("numpy.savez, renamed", save_npz)):
            start = time.perf_counter()
            for i in range(saves):
                save(scratch / f"{name}-{repeat}-{i}".replace(" ", "_").replace("'", ""), tree)
            seconds[name].append((time.perf_counter() - start) / saves)
        start = time.perf_counter()
        for _ in range(saves):
            stand_in_chunk(x).block_until_ready()
        seconds["chunk stand-in alone"].append((time.perf_counter() - start) / saves)
        start = time.perf_counter()
        for i in range(saves):
            stand_in_chunk(x).block_until_ready()
            save_pgjax(scratch / f"after-{repeat}-{i}", tree)
        seconds["stand-in, then pgjax's save"].append((time.perf_counter() - start) / saves)
        start = time.perf_counter()
        for i in range(saves):
            running = stand_in_chunk(x)  # dispatched: XLA computes while the save runs
            save_pgjax(scratch / f"during-{repeat}-{i}", tree)
            running.block_until_ready()
        seconds["pgjax's save during the stand-in"].append((time.perf_counter() - start) / saves)
    return {name: [round(1000 * s, 1) for s in values] for name, values in seconds.items()}


def _mean_median_iqm_contiguous(values: np.ndarray, axis: int = -1) -> np.ndarray:
    # Contiguous first: NumPy sums a strided axis in another order, and scipy's resamples of a stack come strided.
    return _stacked_mean_median_iqm(np.ascontiguousarray(values), axis=axis)


def stacked_intervals(finals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[G, R] -> (low, high), each [3, G]: the groups' intervals in slabs of about 4M resampled values."""
    groups, runs = finals.shape
    alone = max(1, 2**24 // runs)  # the resamples one group draws at a time, alone (`bootstrap_interval`'s batch)
    slab = max(1, 2**22 // (runs * min(BOOTSTRAP_RESAMPLES, alone)))
    lows, highs = [], []
    for first in range(0, groups, slab):
        rows = finals[first:first + slab]
        # `bootstrap_interval`'s call, but with one group's batch of resamples: the same draws for every row
        result = scipy_stats.bootstrap((rows,), _mean_median_iqm_contiguous, n_resamples=BOOTSTRAP_RESAMPLES,
                                       vectorized=True, axis=-1, batch=alone, confidence_level=CONFIDENCE,
                                       method="percentile", rng=np.random.default_rng(0))
        smallest, largest = rows.min(axis=-1), rows.max(axis=-1)
        lows.append(np.clip(result.confidence_interval.low, smallest, largest))
        highs.append(np.clip(result.confidence_interval.high, smallest, largest))
    return np.concatenate(lows, axis=-1), np.concatenate(highs, axis=-1)


def time_statistics(repeats: int) -> dict:
    rng = np.random.default_rng(0)
    finals = np.where(rng.random((1024, 16)) < 0.5, 500.0, rng.uniform(9.0, 500.0, (1024, 16)))
    solved = finals >= 475.0
    solved_at = np.where(solved, rng.uniform(5e4, 2e5, finals.shape), np.nan)
    per_group, stacked = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        reference = [group_statistics(f, s, a) for f, s, a in zip(finals, solved, solved_at)]
        per_group.append(time.perf_counter() - start)
        start = time.perf_counter()
        low, high = stacked_intervals(finals)
        stacked.append(time.perf_counter() - start)
    names = ("mean", "median", "iqm")
    equal = all(reference[g][f"{name}_ci95"] == [float(low[k, g]), float(high[k, g])]
                for g in range(len(reference)) for k, name in enumerate(names))
    return {"groups": 1024, "runs_per_group": 16, "resamples": BOOTSTRAP_RESAMPLES,
            "group_statistics per group s": [round(s, 2) for s in per_group],
            "stacked bootstrap s (intervals only)": [round(s, 2) for s in stacked],
            "intervals bitwise equal": equal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--saves", type=int, default=20, help="saves timed per variant and repeat")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/search_overheads"))
    args = parser.parse_args()
    configure_cpu()  # XLA's CPU devices as pgjax's commands set them up, before JAX starts
    scratch = Path(tempfile.mkdtemp())
    try:
        tree = chunk_tree(scratch)
        results = {
            "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "cpu_isa": cpu_isa(),
                        "devices": len(jax.devices())},
            "chunk": {"arrays": len(jax.tree.leaves(tree)),
                      "bytes": int(sum(leaf.nbytes for leaf in jax.tree.leaves(tree)))},
            "checkpoint ms per save": time_checkpoints(tree, scratch, args.repeats, args.saves),
            "statistics": time_statistics(args.repeats),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    machine = results["machine"]
    lines = [f"Machine: {machine['cpus']} CPUs ({machine['cpu']}, newest instruction set {machine['cpu_isa']}), "
             f"{machine['devices']} XLA CPU devices; one process, variants alternating, {args.repeats} repeats.",
             "", f"Checkpoint of one chunk ({results['chunk']['arrays']} arrays, {results['chunk']['bytes']:,} bytes), "
             f"ms per save (the mean of {args.saves} saves per repeat, each in a new folder; the median of the "
             "repeats):", "",
             "| variant | ms per repeat | median |", "|---|---|---|"]
    for name, values in results["checkpoint ms per save"].items():
        lines.append(f"| {name} | {', '.join(map(str, values))} | {statistics.median(values)} |")
    stats_record = results["statistics"]
    lines += ["", f"Statistics of {stats_record['groups']:,} groups x {stats_record['runs_per_group']} runs "
              f"({stats_record['resamples']} resamples), seconds per repeat: per group "
              f"{stats_record['group_statistics per group s']}; stacked "
              f"{stats_record['stacked bootstrap s (intervals only)']}; intervals bitwise equal: "
              f"{stats_record['intervals bitwise equal']}."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
