"""Does the learned value baseline reduce the variance of the gradient estimate on CartPole, and does it slow the solve?

    python experiments/value_baseline.py          # experiments/results/value_baseline.json and .md

1. Variance. A CartPole-v1 run of the value-baseline setting below is trained and
   its policy and value network are kept after 10, 25 and 50 updates (4 seeds).
   At each of these fixed policies, `--batches` independent batches of 8 fresh
   episodes are drawn and every estimator's gradient is computed on the same
   batches (reduction step_mean, no entropy bonus). Reported per estimator: the
   total variance of the gradient over batches, tr Cov[g] = E||g - E g||^2, and
   the relative variance tr Cov[g] / ||E g||^2 (scale-free, so that estimators
   that standardise their weights compare with those that do not).
2. Solve speed. 64 seeds of the default preset and of the value-baseline setting,
   through `python -m pgjax.train`: runs solved, env steps to first solve, wall time.
"""

from __future__ import annotations

from pgjax.running.devices import configure_cpu

if __name__ == "__main__":
    configure_cpu()

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from pgjax.algo.config import Config
from pgjax.algo.envs import make_env
from pgjax.algo.fast.blocks import make_policy_gradient, make_value_forward
from pgjax.algo.policy import make_apply_fn, make_distribution, make_policy, make_value_fn, make_value_network
from pgjax.algo.presets import PRESETS
from pgjax.algo.rollout import make_collect
from pgjax.algo.trainer import make_trainer, run_updates
from pgjax.algo.weights import advantage_weights, apply_baseline, step_coefficients, step_returns, value_advantages
from pgjax.running.run_folder import files, loading

# The value-baseline setting for CartPole: the default's network, lr and episodes per update;
# reward-to-go (gamma 0.99) minus a learned V(s), the advantages not standardised.
VALUE_FLAGS = ["--returns", "reward_to_go", "--baseline", "value", "--gamma", "0.99", "--value-lr", "0.03",
               "--value-scale", "100"]
VALUE_CONFIG = Config(
    dataclasses.replace(PRESETS["default"].static, returns="reward_to_go", baseline="value"),
    dataclasses.replace(PRESETS["default"].hparams, gamma=0.99, value_learning_rate=0.03, value_scale=100.0),
)

# estimator name -> how the per-step weights are computed (all on the same episodes)
ESTIMATORS = {
    "episode return, batch_norm (default preset, gamma 1)": "default",
    "reward-to-go, no baseline": "rtg",
    "reward-to-go - batch mean": "rtg_mean",
    "reward-to-go - V(s) (--baseline value)": "value",
    "GAE(0.95) (--baseline value --advantage gae)": "gae",
    "reward-to-go - V(s), standardised (--baseline value_norm)": "value_norm",
}


@dataclasses.dataclass
class Args:
    seeds: int = 4
    """Training seeds whose policies are measured."""
    snapshots: tuple[int, ...] = (10, 25, 50)
    """Updates after which the policy and value network are measured."""
    batches: int = 256
    """Independent batches of 8 episodes per policy."""
    solve_seeds: int = 64
    """Seeds of each setting in the solve-speed comparison (0: skip it)."""
    out: Path = Path("experiments/results/value_baseline.json")


def snapshots(args: Args) -> list[tuple[int, object, object, float]]:
    """(update, policy params [S, ...], value params [S, ...], mean return of that update) per snapshot."""
    trainer = make_trainer(VALUE_CONFIG)
    hparams = VALUE_CONFIG.hparams.broadcast(args.seeds)
    keys = jax.vmap(jax.random.key)(jnp.arange(args.seeds))
    state = jax.jit(jax.vmap(trainer.init))(keys, hparams)
    advance = jax.jit(jax.vmap(lambda s, h, n: run_updates(trainer.update, s, h, max(args.snapshots), n),
                               in_axes=(0, 0, None)))
    done, out = 0, []
    for update in args.snapshots:
        state, metrics = advance(state, hparams, update - done)
        last = np.asarray(metrics.episode_return)[:, update - done - 1]
        done = update
        out.append((update, state.params, state.value_params, float(last.mean())))
    return out


def gradient_samples(params, value_params, num_batches: int, key) -> dict[str, np.ndarray]:
    """Every estimator's flattened gradient on `num_batches` batches of fresh episodes: {name: [B, P]}."""
    static = VALUE_CONFIG.static
    spec = make_env(static.env)
    apply_fn = make_apply_fn(make_policy(spec, VALUE_CONFIG))
    dist = make_distribution(spec, VALUE_CONFIG.static.squash)
    value_fn = make_value_fn(make_value_network(spec, VALUE_CONFIG))
    collect = make_collect(spec, apply_fn, static.episodes_per_update, dist, keep_last_obs=True)
    gradient = make_policy_gradient(apply_fn, dist)
    values_of = make_value_forward(value_fn)
    h = VALUE_CONFIG.hparams

    def one_batch(key):
        traj = collect(params, key)
        valid, reward = traj.valid, traj.reward
        values = h.value_scale * values_of(value_params, traj.obs, valid)
        last_values = h.value_scale * value_fn(value_params, traj.last_obs)
        rtg = step_returns(reward, valid, h.gamma, "reward_to_go")
        adv, _ = value_advantages(reward, valid, traj.truncated, values, last_values, h.gamma, 0.95, "return")
        gae, _ = value_advantages(reward, valid, traj.truncated, values, last_values, h.gamma, 0.95, "gae")
        weights = {
            "default": apply_baseline(step_returns(reward, valid, 1.0, "episode"), valid, "batch_norm"),
            "rtg": rtg,
            "rtg_mean": apply_baseline(rtg, valid, "batch_mean"),
            "value": advantage_weights(adv, valid, "value"),
            "gae": advantage_weights(gae, valid, "value"),
            "value_norm": advantage_weights(adv, valid, "value_norm"),
        }
        coef = step_coefficients(valid, "step_mean")
        flat = {}
        for name, w in weights.items():
            _, grads, _ = gradient(params, traj.obs, traj.action, w, coef, valid, 0.0)
            flat[name] = jnp.concatenate([x.ravel() for x in jax.tree.leaves(grads)])
        return flat

    samples = jax.jit(jax.vmap(one_batch))(jax.random.split(key, num_batches))
    return {name: np.asarray(x, np.float64) for name, x in samples.items()}


def variance(g: np.ndarray) -> dict:
    mean = g.mean(axis=0)
    total = float(((g - mean) ** 2).sum(axis=1).mean())
    signal = float((mean**2).sum())
    # a solved policy can get exactly zero gradients (batch_norm of equal returns): no ratio then
    relative = total / signal if signal > 0 else None
    return {"total_variance": total, "mean_gradient_sq_norm": signal, "relative_variance": relative}


def solve_speed(args: Args, flags: list[str]) -> dict:
    """64 seeds through the training command: solved, env steps to solve, wall time."""
    from pgjax.commands.train import main as train_main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        start = time.perf_counter()
        assert train_main([*flags, "--num-seeds", str(args.solve_seeds), "--quiet", "--out", str(out)]) == 0
        wall = time.perf_counter() - start
        summary = loading.load_summary(out)
    stats = summary["statistics"]
    return {
        "flags": flags, "solved": round(summary["solved_fraction"] * summary["num_runs"]), "runs": summary["num_runs"],
        "solve_steps": stats["solve_steps"], "final_return_iqm": stats["iqm"],
        "final_return_iqm_ci95": stats["iqm_ci95"],
        "final_return_min": min(r["final_return"] for r in summary["runs"]),
        "env_steps_total": summary["env_steps_total"], "train_seconds": summary["train_seconds"],
        "compile_seconds": summary["compile_seconds"], "wall_seconds": wall,
    }


def _fmt(x: float | None) -> str:
    return "- (zero mean gradient)" if x is None else f"{x:.3g}"


def markdown(result: dict) -> str:
    lines = [
        "policy after: " + ", ".join(f"update {s['update']} (mean return {s['mean_return']:.0f})"
                                      for s in result["snapshots"]),
        "",
        "| estimator | " + " | ".join(f"update {s['update']}: tr Cov[g]" for s in result["snapshots"])
        + " | " + " | ".join(f"update {s['update']}: tr Cov / ||E g||^2" for s in result["snapshots"]) + " |",
        "|---|" + "---|" * (2 * len(result["snapshots"])),
    ]
    for name in ESTIMATORS:
        cells = [f"{s['estimators'][name]['total_variance']:.3g}" for s in result["snapshots"]]
        cells += [_fmt(s["estimators"][name]["relative_variance"]) for s in result["snapshots"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if result.get("solve"):
        lines += ["", "| setting | solved | median env steps to first solve | IQM final return [95% CI] | worst run "
                  "| train s | wall s |", "|---|---|---|---|---|---|---|"]
        for name, s in result["solve"].items():
            ci = s["final_return_iqm_ci95"]
            lines.append(
                f"| {name} | {s['solved']}/{s['runs']} | {s['solve_steps']['median']:,.0f} | "
                f"{s['final_return_iqm']:.1f} [{ci[0]:.1f}, {ci[1]:.1f}] | {s['final_return_min']:.1f} | "
                f"{s['train_seconds']:.1f} | {s['wall_seconds']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = tyro.cli(Args)
    result = {"command": sys.argv, "value_config": VALUE_CONFIG.to_dict(), "value_flags": VALUE_FLAGS,
              "seeds": args.seeds, "batches": args.batches, "episodes_per_batch": 8, "snapshots": [],
              "versions": files.package_versions(), "devices": [str(d) for d in jax.devices()],
              "device_kind": jax.devices()[0].device_kind}
    start = time.perf_counter()
    for update, params, value_params, mean_return in snapshots(args):
        per_seed = []
        for seed in range(args.seeds):
            one = jax.tree.map(lambda x: x[seed], (params, value_params))
            per_seed.append(gradient_samples(*one, args.batches, jax.random.key(1000 + seed)))
        estimators = {}
        for name, code in ESTIMATORS.items():
            stats = [variance(s[code]) for s in per_seed]
            ratios = [s["relative_variance"] for s in stats]
            estimators[name] = {
                "total_variance": float(np.mean([s["total_variance"] for s in stats])),
                "mean_gradient_sq_norm": float(np.mean([s["mean_gradient_sq_norm"] for s in stats])),
                # mean over the seeds whose mean gradient is not zero
                "relative_variance": float(np.mean([r for r in ratios if r is not None])) if any(ratios) else None,
                "relative_variance_per_seed": ratios,
            }
        result["snapshots"].append({"update": update, "mean_return": mean_return, "estimators": estimators})
        print(f"update {update} (mean return {mean_return:.0f}):",
              {k: v["relative_variance"] for k, v in estimators.items()}, flush=True)
    result["variance_seconds"] = time.perf_counter() - start
    if args.solve_seeds:
        result["solve"] = {
            "default preset": solve_speed(args, []),
            "value baseline (" + " ".join(VALUE_FLAGS) + ")": solve_speed(args, VALUE_FLAGS),
        }
    files.write_json(args.out, result)
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
