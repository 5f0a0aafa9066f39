"""Every environment's preset on 32 seeds against a uniformly random policy: the README's environment table.

    python experiments/envs_table.py                     # experiments/results/envs_table.json and .md
    python experiments/envs_table.py --envs Pendulum-v1  # some of them

For each environment, `python -m pgjax.train --env ENV --num-seeds 32` trains its
preset (`pgjax.algo.presets.ENV_PRESETS`, budgets sized for a 2-core CPU). A run's
final return is the mean return of its last 100 training episodes (the sampling
policy, as trained); the table gives the IQM over the 32 runs with its 95%
percentile-bootstrap interval (`pgjax.results.stats.group_statistics`). The random
baseline is measured the same way: 32 seeds x 100 fresh episodes of a uniformly
random policy (uniform over the Discrete actions, or over the Box), a seed's
return being the mean of its 100 episodes. "Runs above random" counts runs whose
final return exceeds the best of the 32 random seeds.

Reference figures are quoted only where a source states a number for the
environment (with the source named); "none found" otherwise.
"""

from __future__ import annotations

from pgjax.algo.policy import Distribution, categorical, gaussian
from pgjax.running.devices import configure_cpu

if __name__ == "__main__":
    configure_cpu()

import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from pgjax.algo.envs import make_env
from pgjax.algo.presets import ENV_PRESETS
from pgjax.algo.rollout import make_collect
from pgjax.commands.train import main as train_main
from pgjax.results import stats
from pgjax.running.run_folder import files, loading

ENVS = (
    "CartPole-v1", "Pendulum-v1", "MountainCarContinuous-v0", "Acrobot-v1", "MountainCar-v0", "Catch-bsuite",
    "Breakout-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar",
)

GYMNAX_README = (
    "gymnax README (github.com/RobertTLange/gymnax, commit 012251b), table 'Implemented Accelerated Environments', "
    "column 'Ckpt (Return)': return of the PPO/ES checkpoints of gymnax-blines"
)
MINATAR_PLOTS = ("none found: MinAtar's own results (Young & Tian 2019; github.com/kenjyoung/MinAtar README) are "
                 "learning-curve plots without a table of numbers")
REFERENCES = {
    "CartPole-v1": (500.0, GYMNAX_README),
    "Pendulum-v1": (-130.0, GYMNAX_README),
    "MountainCarContinuous-v0": (92.0, GYMNAX_README),
    "Acrobot-v1": (-80.0, GYMNAX_README),
    "MountainCar-v0": (-118.0, GYMNAX_README),
    "Catch-bsuite": (1.0, GYMNAX_README),
    "Breakout-MinAtar": (None, MINATAR_PLOTS),
    "Asterix-MinAtar": (None, MINATAR_PLOTS),
    "Freeway-MinAtar": (None, MINATAR_PLOTS),
    "SpaceInvaders-MinAtar": (None, MINATAR_PLOTS),
}
# A published random-policy figure: MinAtar's README, examples/random_play.py on breakout
# ("Avg Return: 0.5+/-0.023", 1000 episodes of the original, not gymnax's, implementation).
RANDOM_REFERENCES = {"Breakout-MinAtar": "0.5 (MinAtar README, random_play.py, 1000 episodes)"}


@dataclasses.dataclass
class Args:
    envs: tuple[str, ...] = ENVS
    """Environments to train (each with its preset)."""
    num_seeds: int = 32
    """Seeds per environment (training and random baseline)."""
    random_episodes: int = 100
    """Episodes per seed of the random baseline."""
    out: Path = Path("experiments/results/envs_table.json")


def _uniform(spec) -> Distribution:
    """A uniformly random policy: categorical over zero logits, or uniform over the Box (in normalised units)."""
    if spec.action_kind == "discrete":
        return categorical()
    uniform = gaussian(spec.action_low, spec.action_high, "clip")

    def sample(key, out):
        return jax.random.uniform(key, out.shape[:-1] + (spec.num_actions,), minval=-1.0, maxval=1.0)

    return uniform._replace(sample=sample)


def random_baseline(env_id: str, num_seeds: int, episodes: int) -> np.ndarray:
    """[num_seeds] mean return of `episodes` fresh episodes of a uniformly random policy, per seed."""
    spec = make_env(env_id)
    width = spec.num_actions * (2 if spec.action_kind == "continuous" else 1)
    zeros = lambda params, obs: jnp.zeros(obs.shape[:1] + (width,), jnp.float32)
    per_call = max(1, min(episodes, 25))
    collect = jax.jit(jax.vmap(make_collect(spec, zeros, per_call, _uniform(spec))))
    base = jax.random.key(123_456)  # apart from the training seeds' keys
    returns = np.zeros((num_seeds, 0))
    for call in range(-(-episodes // per_call)):
        keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(base, k), call))(jnp.arange(num_seeds))
        chunks = []
        for start in range(0, num_seeds, 8):  # 8 seeds at a time: Freeway's buffers are large
            traj = collect(jnp.zeros(min(8, num_seeds - start)), keys[start:start + 8])
            chunks.append(np.asarray(traj.reward.sum(axis=1)))  # [runs, T, E] -> [runs, E]
        returns = np.concatenate([returns, np.concatenate(chunks)], axis=1)
    return returns[:, :episodes].mean(axis=1)


def train_preset(env_id: str, num_seeds: int) -> dict:
    """The environment's preset through the training command; its summary's figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        start = time.perf_counter()
        argv = ["--env", env_id, "--num-seeds", str(num_seeds), "--quiet", "--compile-cache", "off", "--out", str(out)]
        assert train_main(argv) == 0  # cold compiles: the timings include them
        wall = time.perf_counter() - start
        summary = loading.load_summary(out)
    finals = np.array([r["final_return"] for r in summary["runs"]])
    return {
        "summary_statistics": summary["statistics"], "final_returns": finals,
        "solved_fraction": summary["solved_fraction"], "solve_threshold": summary["solve_threshold"],
        "env_steps_total": summary["env_steps_total"], "env_steps_per_run": summary["env_steps_total"] / len(finals),
        "train_seconds": summary["train_seconds"], "compile_seconds": summary["compile_seconds"],
        "wall_seconds": wall, "env_steps_per_second": summary["env_steps_per_second"],
        "num_diverged": summary["num_diverged"],
    }


def describe(config) -> str:
    s, h = config.static, config.hparams
    net = f"{s.network.upper()} {','.join(map(str, s.hidden))} {s.activation}"
    if s.baseline in ("value", "value_norm"):
        weights = f"{s.returns} - V(s){' (GAE ' + format(h.gae_lambda, 'g') + ')' if s.advantage == 'gae' else ''}"
        weights += ", standardised" if s.baseline == "value_norm" else ""
    else:
        weights = f"{s.returns}, {s.baseline}"
    extra = f", entropy {h.entropy_coef:g}" if h.entropy_coef else ""
    return (f"{net}; {weights}; gamma {h.gamma:g}; lr {h.learning_rate:g}{extra}; "
            f"{s.num_updates} updates x {s.episodes_per_update} episodes")


def markdown(result: dict) -> str:
    head = ("| environment | preset | random policy: IQM [95% CI] | trained: IQM [95% CI] | improvement (IQM) | "
            "worst trained run / best random seed | runs above random | solved | env steps per run | wall s "
            "(train s) | published reference |")
    lines = [head, "|" + "---|" * 11]
    for env, r in result["envs"].items():
        t, rnd = r["trained"], r["random"]
        ti, tl, th = t["iqm"], *t["iqm_ci95"]
        ri, rl, rh = rnd["iqm"], *rnd["iqm_ci95"]
        solved = "-" if r["solved_fraction"] is None else f"{round(r['solved_fraction'] * result['num_seeds'])}/" \
                                                          f"{result['num_seeds']}"
        ref_value, ref_source = r["reference"]
        ref = "none found" if ref_value is None else f"{ref_value:g} (gymnax README, PPO/ES checkpoint)"
        lines.append(
            f"| {env} | {r['preset']} | {ri:.2f} [{rl:.2f}, {rh:.2f}] | {ti:.2f} [{tl:.2f}, {th:.2f}] | "
            f"{ti - ri:+.2f} | {r['worst_run']:.2f} / {r['best_random_seed']:.2f} | "
            f"{r['runs_above_random']}/{result['num_seeds']} | {solved} | {r['env_steps_per_run']:,.0f} | "
            f"{r['wall_seconds']:.0f} ({r['train_seconds']:.0f}) | {ref} |"
        )
    return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    args = tyro.cli(Args)
    result = {
        "command": sys.argv, "num_seeds": args.num_seeds, "random_episodes": args.random_episodes,
        "versions": files.package_versions(), "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind, "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "reference_sources": {"gymnax": GYMNAX_README, "minatar": MINATAR_PLOTS}, "envs": {},
    }
    start = time.perf_counter()
    for env in args.envs:
        load_before = os.getloadavg()[0]  # other processes on the machine slow the timings down
        t0 = time.perf_counter()
        random_returns = random_baseline(env, args.num_seeds, args.random_episodes)
        random_seconds = time.perf_counter() - t0
        trained = train_preset(env, args.num_seeds)
        finals = trained.pop("final_returns")
        random_stats = stats.mean_median_iqm(random_returns)
        entry = {
            "preset": describe(ENV_PRESETS[env]),
            "config": ENV_PRESETS[env].to_dict(),
            "trained": {k: trained["summary_statistics"][k] for k in ("iqm", "iqm_ci95", "mean", "median")},
            "random": {k: random_stats[k] for k in ("iqm", "iqm_ci95", "mean", "median")},
            "random_returns": random_returns, "final_returns": finals,
            "worst_run": float(finals.min()), "best_random_seed": float(random_returns.max()),
            "runs_above_random": int((finals > random_returns.max()).sum()),
            "reference": REFERENCES.get(env, (None, "none found")),
            "random_reference": RANDOM_REFERENCES.get(env),
            "random_seconds": random_seconds,
            "load_average_1min": [load_before, os.getloadavg()[0]],
            **{k: v for k, v in trained.items() if k != "summary_statistics"},
        }
        result["envs"][env] = entry
        print(f"{env}: random IQM {random_stats['iqm']:.2f}, trained IQM {entry['trained']['iqm']:.2f}, worst run "
              f"{entry['worst_run']:.2f}, above random {entry['runs_above_random']}/{args.num_seeds}, "
              f"{trained['env_steps_per_run']:,.0f} steps/run, {trained['wall_seconds']:.0f} s, load average "
              f"{load_before:.1f} -> {entry['load_average_1min'][1]:.1f}", flush=True)
    result["total_seconds"] = time.perf_counter() - start
    files.write_json(args.out, result)
    table = markdown(result)
    loads = [x for e in result["envs"].values() for x in e["load_average_1min"]]
    args.out.with_suffix(".md").write_text(
        table + f"\n{args.num_seeds} seeds per environment on {result['cpu']} ({result['cpu_count']} cores, "
        f"{len(result['devices'])} XLA CPU devices); jax {result['versions']['jax']}, gymnax "
        f"{result['versions']['gymnax']}; whole script {result['total_seconds'] / 60:.1f} min; 1-minute load "
        f"average {min(loads):.1f} to {max(loads):.1f} (above ~2, other processes shared the 2 cores).\n"
    )
    print(table)


if __name__ == "__main__":
    main()
