"""What the training command's compile time is made of, and what the alternatives cost: the README's compile figures.

    python experiments/compile_time.py [--repeats 3] [--out experiments/results/compile_time.json]

Each measurement runs in a fresh process (nothing cached, XLA flags per variant),
the variants alternating, `--repeats` times; the default preset, 64 runs over
every CPU device. Segment variants compile one segment of
`pgjax.running.sweep.SEGMENT_UPDATES` updates and its init program, as the command does:

  sweep           what `python -m pgjax.train` compiles: the entropy bonus fixed
                  when tracing (`make_trainer(config, fast=FastPaths(entropy_bonus=False))`),
                  the segment vmapping the one-run update (`run_batch_updates`),
                  which traces the rollout and the gradient at one run and again
                  at the batch (`pgjax.algo.fast.folded`);
  entropy_cond    the same with the bonus decided at run time by a `lax.cond`
                  (`entropy_bonus=None`), which compiles the gradient twice;
  small_loops_1k  `sweep` with XLA's own small-loop limit, 1 KiB, instead of
                  `pgjax.running.devices.SMALL_LOOP_BYTES` (so every random-number
                  call's threefry loop dispatches its kernels one by one);
  legacy_fusion   `sweep` under XLA_FLAGS=--xla_cpu_use_fusion_emitters=false.

Whole-training variants compile `make_train`'s one program (initialisation and
all 100 updates), as `python -m pgjax.bench` does:

  train_vmap      `jax.vmap(make_train(config))`, traced at one run and again
                  at the batch.

(pgjax 0.2 also measured `vmapped_update` against a segment traced over an
explicit run axis, and `train_batched`; 0.3 has only the vmapped one-run update.)

Per variant: tracing (lower) and XLA compile seconds of the segment (or the
whole program), its optimised HLO's lines and fusions, the init program's
compile seconds and HLO lines (segment variants), the seconds of 100 updates
once compiled, the env steps and an MD5 of the final parameters and keys (equal
digests: bitwise equal results). Medians over repeats.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import tyro

VARIANTS = {
    "sweep": {},
    "entropy_cond": {},
    "small_loops_1k": {"XLA_FLAGS": "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1024"},
    "legacy_fusion": {"XLA_FLAGS": "--xla_cpu_use_fusion_emitters=false"},
    "train_vmap": {},
}


@dataclasses.dataclass
class Args:
    repeats: int = 3
    """Alternating repetitions of every variant, each in a fresh process."""
    out: Path = Path("experiments/results/compile_time.json")
    """JSON file to write."""
    variant: str | None = None
    """Internal: measure this variant in this process and print its JSON."""


def measure(variant: str) -> dict:
    """One variant's figures, in this (fresh) process."""
    import hashlib
    import time

    from pgjax.running.devices import configure_cpu

    configure_cpu()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from pgjax.algo.config import FastPaths
    from pgjax.algo.presets import preset_config
    from pgjax.algo.trainer import make_train, make_trainer
    from pgjax.running.segments import SEGMENT_UPDATES, _control, make_segment
    from pgjax.running.sharding import fetch, place_runs, run_mesh, shard_runs

    config = preset_config("default", "CartPole-v1")
    num_runs = 64
    mesh = run_mesh(jax.devices())

    def hlo_size(compiled) -> tuple[int, int]:
        text = compiled.as_text()
        return text.count("\n"), len(re.findall(r" fusion\(", text))

    def digest(state) -> str:
        host = fetch((state.params, state.key))
        return hashlib.md5(b"".join(np.ascontiguousarray(x).tobytes() for x in jax.tree.leaves(host))).hexdigest()

    if variant.startswith("train_"):
        train = make_train(config, fast=FastPaths(entropy_bonus=False))
        fn = shard_runs(jax.vmap(train), mesh)
        placed = place_runs((jax.vmap(jax.random.key)(jnp.arange(num_runs)), config.hparams.broadcast(num_runs)), mesh)
        start = time.perf_counter()
        lowered = fn.lower(*placed)
        lowered_at = time.perf_counter()
        compiled = lowered.compile()
        compiled_at = time.perf_counter()
        state, _ = jax.block_until_ready(compiled(*placed))
        lines, fusions = hlo_size(compiled)
        return {
            "lower_seconds": lowered_at - start, "compile_seconds": compiled_at - lowered_at,
            "hlo_lines": lines, "fusions": fusions, "init_compile_seconds": None, "init_hlo_lines": None,
            "train_seconds_100_updates": time.perf_counter() - compiled_at,
            "env_steps": int(np.asarray(state.env_steps).sum()), "state_md5": digest(state),
        }

    trainer = make_trainer(config, fast=FastPaths(entropy_bonus=None if variant == "entropy_cond" else False))
    segment = make_segment(trainer, SEGMENT_UPDATES, mesh)
    fn = segment.fn
    key_data = place_runs(np.asarray(jax.random.key_data(jax.vmap(jax.random.key)(jnp.arange(num_runs)))), mesh)
    hparams = place_runs(config.hparams.broadcast(num_runs), mesh)
    control = place_runs(_control(num_runs, SEGMENT_UPDATES), mesh)

    start = time.perf_counter()
    init = segment.init.lower(key_data, hparams).compile()
    init_seconds = time.perf_counter() - start
    state = init(key_data, hparams)
    start = time.perf_counter()
    lowered = fn.lower(state, hparams, control)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    compiled_at = time.perf_counter()
    start_train = time.perf_counter()
    for _ in range(config.static.num_updates // SEGMENT_UPDATES):
        state, _ = compiled(state, hparams, control)
    jax.block_until_ready(state)
    train_seconds = time.perf_counter() - start_train
    lines, fusions = hlo_size(compiled)
    return {
        "lower_seconds": lowered_at - start, "compile_seconds": compiled_at - lowered_at,
        "hlo_lines": lines, "fusions": fusions, "init_compile_seconds": init_seconds,
        "init_hlo_lines": hlo_size(init)[0], "train_seconds_100_updates": train_seconds,
        "env_steps": int(np.asarray(state.env_steps).sum()), "state_md5": digest(state),
    }


def main() -> None:
    args = tyro.cli(Args)
    if args.variant is not None:
        print(json.dumps(measure(args.variant)))
        return
    samples: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        for name, env in VARIANTS.items():
            done = subprocess.run([sys.executable, __file__, "--variant", name], env={**os.environ, **env},
                                  capture_output=True, text=True, check=True)
            samples[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"repeat {repeat + 1} {name}: {samples[name][-1]}", flush=True)
    medians = {name: {key: statistics.median(s[key] for s in runs) for key, value in runs[0].items()
                      if isinstance(value, (int, float))}
               for name, runs in samples.items()}
    digests = {name: sorted({s["state_md5"] for s in runs}) for name, runs in samples.items()}
    from pgjax.running.run_folder import files

    result = {"command": sys.argv, "repeats": args.repeats, "variants": VARIANTS, "medians": medians,
              "state_md5": digests, "samples": samples, "versions": files.package_versions()}
    files.write_json(args.out, result)
    print(f"{'variant':16} {'lower s':>8} {'compile s':>9} {'HLO lines':>9} {'fusions':>7} {'init s':>6} "
          f"{'init HLO':>8} {'100 updates s':>13}  {'env steps':>10} state MD5")
    for name, m in medians.items():
        init = (f"{m['init_compile_seconds']:6.2f} {m['init_hlo_lines']:8.0f}" if "init_hlo_lines" in m
                else f"{'-':>6} {'-':>8}")
        print(f"{name:16} {m['lower_seconds']:8.2f} {m['compile_seconds']:9.2f} {m['hlo_lines']:9.0f} "
              f"{m['fusions']:7.0f} {init} {m['train_seconds_100_updates']:13.2f}  {m['env_steps']:10.0f} "
              f"{','.join(d[:8] for d in digests[name])}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
