"""The two tutorials' gradient estimators and pgjax's default compared on the same episodes, on CartPole-v1, at
initialisation and halfway through training: docs/gradient-estimator.md's table.

    python experiments/gradient_estimator.py [--seeds 4] [--episodes 1024] [--batch-episodes 8]
        [--reference-batches 8] [--out experiments/results/gradient_estimator.json]

For each preset (seed-a: tutorial 000, seed-b: tutorial 001, default) it trains `--seeds` runs for half the
preset's updates (`python -m pgjax.train --preset P --num-updates U/2`, a fresh process), and for each run
measures two policies: the initial one (rebuilt from the run's seed, as `python -m pgjax.gradients --policy
initial` does) and the halfway one (the run's final). On each policy it computes, on the same K = episodes /
batch-episodes batches of E episodes (`pgjax.results.gradient_stats.measure_gradients`), the per-episode
gradient estimates of five weightings, each on the preset's own network:

    000: tutorial 000's, the episode's return minus 15 on every step, averaged over the episode's steps
         (returns episode, baseline constant 15, reduction episode_mean, gamma 1);
    001: tutorial 001's, the reward-to-go at gamma 0.9 standardised within the episode, summed over its steps
         (returns reward_to_go, baseline episode_norm, reduction episode_sum, gamma 0.9);
    default: pgjax's default, the episode's return standardised over the batch's steps, averaged over every
         step of the batch (returns episode, baseline batch_norm, reduction step_mean, gamma 1);
    reward_to_go: the plain unbiased estimator (returns reward_to_go, no baseline, episode_sum, gamma 1);
    episode: the whole return on every step, the same otherwise (unbiased too, and on reward_to_go's scale:
         their variances compare as they are, `variance_ratio_to_episode`);

and the reference gradient of the last on `--reference-batches` x K other batches: -grad J of the expected
undiscounted return, unbiased. The statistics and their paired bootstrap intervals are
`pgjax.results.gradient_stats.paired_statistics`', with 000 as the baseline of the ratios. Both tutorials update
on one episode; the measurement uses batches of E = 8 episodes (the default's update, which needs E >= 2 to
normalise over a batch): for 000 and 001, whose episodes are independent, the SNR of an update is E times that
of one episode and the ratio 001 / 000 is the same at any E.

A benchmark of the estimators, not a test; on a 2-core CPU it takes about 15 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = ("seed-a", "seed-b", "default")
# name -> (returns, baseline, reduction, gamma, baseline_constant)
WEIGHTINGS = {
    "000": ("episode", "constant", "episode_mean", 1.0, 15.0),
    "001": ("reward_to_go", "episode_norm", "episode_sum", 0.9, 0.0),
    "default": ("episode", "batch_norm", "step_mean", 1.0, 0.0),
    "reward_to_go": ("reward_to_go", "none", "episode_sum", 1.0, 0.0),
    "episode": ("episode", "none", "episode_sum", 1.0, 0.0),
}
REPORTED = ("update_variance", "snr", "cosine", "variance_ratio", "snr_ratio", "cosine_difference")


def weighting_configs(config) -> dict:
    """`WEIGHTINGS` on `config`'s environment and network (its other settings kept)."""
    from pgjax.algo.config import Config

    configs = {}
    for name, (returns, baseline, reduction, gamma, constant) in WEIGHTINGS.items():
        static = dataclasses.replace(config.static, returns=returns, baseline=baseline, reduction=reduction,
                                     weighting="", step_loss="")
        configs[name] = Config(static, config.hparams.replace(gamma=gamma, baseline_constant=constant))
    return configs


def train_halfway(preset: str, seeds: int, folder: Path) -> Path:
    """Train `seeds` runs of `preset` for half its updates in a fresh process; returns the run folder."""
    from pgjax.algo.presets import preset_config

    half = preset_config(preset, "CartPole-v1").static.num_updates // 2
    out = folder / preset
    subprocess.run([sys.executable, "-m", "pgjax.train", "--preset", preset, "--num-updates", str(half),
                    "--num-seeds", str(seeds), "--quiet", "--out", str(out)], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return out


def measure_policy(configs: dict, params, seed: int, args) -> dict:
    """The four weightings' statistics (points and 95% paired intervals) on one policy."""
    import jax
    import numpy as np

    from pgjax.results.gradient_stats import measure_gradients, paired_statistics

    key = jax.random.key(seed)
    num_batches = args.episodes // args.batch_episodes
    measured = measure_gradients(configs, configs["reward_to_go"], params, jax.random.fold_in(key, 0),
                                 jax.random.fold_in(key, 1), num_batches, args.batch_episodes,
                                 args.reference_batches)
    reference = (measured.grads, measured.reference.mean, measured.reference.variance)
    statistics = paired_statistics(*reference, baseline=measured.names.index("000"), reps=args.resamples, seed=seed)
    to_episode = paired_statistics(*reference, baseline=measured.names.index("episode"), reps=args.resamples,
                                   seed=seed)["variance_ratio"]

    def triple(values, w):
        return [float(values[k][w]) for k in ("point", "low", "high")]

    return {
        "mean_return": float(np.mean(measured.returns)),
        "reference_norm": float(np.linalg.norm(measured.reference.mean)),
        "weightings": {name: {**{statistic: triple(statistics[statistic], w) for statistic in REPORTED},
                              "variance_ratio_to_episode": triple(to_episode, w)}
                       for w, name in enumerate(measured.names)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=1024)
    parser.add_argument("--batch-episodes", type=int, default=8)
    parser.add_argument("--reference-batches", type=int, default=8)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/gradient_estimator.json")
    args = parser.parse_args()

    import jax
    import numpy as np

    from pgjax.algo.trainer import make_trainer
    from pgjax.running.run_folder import loading

    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in PRESETS:
            folder = train_halfway(preset, args.seeds, Path(tmp))
            summary = loading.load_summary(folder)
            for run in range(len(summary["runs"])):
                config = loading.load_run_config(folder, run)
                seed = summary["runs"][run]["seed"]
                initial = make_trainer(config).init(jax.random.key(seed), config.hparams.as_arrays()).params
                policies = {"initial": jax.tree.map(np.asarray, initial),
                            "halfway": loading.load_params(folder, run)}
                for stage, params in policies.items():
                    entry = {"preset": preset, "run": run, "seed": seed, "stage": stage,
                             "updates": 0 if stage == "initial" else config.static.num_updates,
                             **measure_policy(weighting_configs(config), params, 1000 + run, args)}
                    results.append(entry)
                    ratio, cosine = (entry["weightings"]["001"][k] for k in ("snr_ratio", "cosine_difference"))
                    print(f"{preset} run {run} {stage}: return {entry['mean_return']:.1f}, SNR 001/000 "
                          f"{ratio[0]:.3g} [{ratio[1]:.3g}, {ratio[2]:.3g}], cosine 001-000 {cosine[0]:.3g} "
                          f"[{cosine[1]:.3g}, {cosine[2]:.3g}]", flush=True)
    record = {
        "command": "python experiments/gradient_estimator.py " + " ".join(sys.argv[1:]),
        "device": f"{platform.processor() or platform.machine()} CPU, {jax.device_count()} device(s): "
                  f"{jax.devices()[0].device_kind}",
        "jax": jax.__version__, "env": "CartPole-v1", "weightings": {k: list(v) for k, v in WEIGHTINGS.items()},
        "episodes": args.episodes, "batch_episodes": args.batch_episodes,
        "reference_batches": args.reference_batches * (args.episodes // args.batch_episodes),
        "resamples": args.resamples, "wall_seconds": time.perf_counter() - start, "policies": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out} in {record['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
