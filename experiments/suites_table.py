"""One task of a JAX environment suite, measured for docs/environments.md's table of suites.

    python experiments/suites_table.py --env navix/Navix-Empty-5x5-v0
    python experiments/suites_table.py --env brax/inverted_pendulum --env-kwargs backend=positional \
        --max-episode-steps 200 -- --num-updates 100

writes experiments/results/suites/<suite>_<task>.json with, on this machine:

* the random policy's return: `--num-seeds` seeds x `--random-episodes` fresh episodes of a policy
  uniform over the legal actions (over the Box for continuous actions), a seed's return the mean of its
  episodes (`random_returns`);
* pgjax's training through the train command (its preset "default": the suite adapter's `PRESETS` where it
  has one, else CartPole's settings with the unpreset learning rate; flags after `--` change it): the IQM of the
  runs' final returns with its 95% percentile-bootstrap interval, the env steps per run, the training steps/s
  (useful env steps of all runs, compile excluded) and the compile seconds;
* the raw environment's steps/s at the same batch (every run's episodes of an update: num_seeds x
  episodes_per_update environments vmapped, uniformly random actions, `lax.scan`, auto-reset included,
  `pgjax.results.throughput.env_limit`), measured in the same process after the training.
"""

from __future__ import annotations

from pgjax.running.devices import configure_cpu

if __name__ == "__main__":
    configure_cpu()

import dataclasses
import json
import platform
import re
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from pgjax.algo.envs import EnvSpec, make_env
from pgjax.algo.rollout import make_collect
from pgjax.commands.train import main as train_main
from pgjax.results import random_policy, throughput
from pgjax.results.stats import mean_median_iqm
from pgjax.running.run_folder import loading


@dataclasses.dataclass
class Args:
    env: str
    """The task: SUITE/NAME (`pgjax.algo.suites`), or any --env the train command takes."""
    env_kwargs: tuple[str, ...] = ()
    """The suite's own arguments, key=value (--env-kwargs)."""
    max_episode_steps: int = 0
    """The episode cap (--max-episode-steps; 0: the environment's own limit)."""
    num_seeds: int = 8
    """Seeds of the training and of the random policy."""
    random_episodes: int = 100
    """Fresh episodes per seed of the random policy."""
    env_limit_steps: int = 200
    """Steps of each environment when the raw environment is timed."""
    out_dir: Path = Path("experiments/results/suites")


def random_returns(spec: EnvSpec, num_seeds: int, episodes: int) -> np.ndarray:
    """[num_seeds] mean return of `episodes` fresh episodes of a policy uniform over the legal actions (the
    Box for continuous ones), per seed: the rollout of training with zero logits, masked where the
    environment gives a mask."""
    uniform = random_policy.zero_policy(spec)  # zero logits, masked where the environment gives a mask
    collect = jax.jit(jax.vmap(make_collect(spec, uniform, episodes, random_policy.uniform_distribution(spec),
                                            skip_auto_reset=True)))
    keys = jax.vmap(lambda seed: jax.random.fold_in(jax.random.key(123_456), seed))(jnp.arange(num_seeds))
    return np.asarray(collect(jnp.zeros(num_seeds), keys).reward.sum(axis=1), np.float64).mean(axis=1)


def env_flags(args: Args) -> list[str]:
    flags = ["--env", args.env]
    if args.env_kwargs:
        flags += ["--env-kwargs", *args.env_kwargs]
    return flags + (["--max-episode-steps", str(args.max_episode_steps)] if args.max_episode_steps else [])


def main(args: Args, train_flags: list[str]) -> dict:
    spec = make_env(args.env, max_episode_steps=args.max_episode_steps, env_kwargs=args.env_kwargs)
    random = random_returns(spec, args.num_seeds, args.random_episodes)
    with tempfile.TemporaryDirectory() as tmp:
        argv = [*env_flags(args), "--num-seeds", str(args.num_seeds), "--quiet", "--compile-cache", "off",
                "--out", str(Path(tmp) / "run"), *train_flags]
        if train_main(argv) != 0:
            raise SystemExit(f"the train command failed: python -m pgjax.train {' '.join(argv)}")
        summary = loading.load_summary(Path(tmp) / "run")
        config = loading.load_run_config(Path(tmp) / "run", 0)
    finals = np.array([run["final_return"] for run in summary["runs"]], np.float64)
    trained = mean_median_iqm(finals)
    batch = args.num_seeds * config.static.episodes_per_update
    raw = throughput.env_limit(spec, batch, args.env_limit_steps)
    return {
        "env": args.env, "env_kwargs": list(args.env_kwargs), "max_steps": spec.max_steps,
        "command": ["python", "-m", "pgjax.train", *env_flags(args), "--num-seeds", str(args.num_seeds), *train_flags],
        "random_policy": {"seeds": args.num_seeds, "episodes_per_seed": args.random_episodes,
                          "per_seed": random.tolist(), "mean": float(random.mean()),
                          "iqm": mean_median_iqm(random)["iqm"]},
        "trained": {"runs": len(finals), "final_returns": finals.tolist(), "iqm": trained["iqm"],
                    "iqm_ci": trained["iqm_ci95"],
                    "above_best_random_seed": int((finals > random.max()).sum()),
                    "env_steps_per_run": summary["env_steps_total"] / len(finals),
                    "train_steps_per_second": summary["env_steps_per_second"],
                    "compile_seconds": summary["compile_seconds"], "num_diverged": summary["num_diverged"],
                    "settings": dataclasses.asdict(config.static) | dataclasses.asdict(config.hparams)},
        "raw_env": {"batch": batch, "steps": args.env_limit_steps, "steps_per_second": raw["steps_per_second"]},
        "device": f"{platform.processor() or platform.machine()}, {throughput.device_description()}",
    }


if __name__ == "__main__":
    split = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
    args = tyro.cli(Args, args=sys.argv[1:split])
    record = main(args, sys.argv[split + 1:])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", args.env) + ".json")
    out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    t, r = record["trained"], record["random_policy"]
    print(f"{args.env}: random {r['mean']:.3g} | pgjax IQM {t['iqm']:.3g} [{t['iqm_ci'][0]:.3g}, {t['iqm_ci'][1]:.3g}]"
          f" over {t['runs']} seeds, {t['env_steps_per_run']:.3g} env steps per run | training "
          f"{t['train_steps_per_second']:.3g} steps/s, raw env {record['raw_env']['steps_per_second']:.3g} steps/s "
          f"at batch {record['raw_env']['batch']} -> {out}")
