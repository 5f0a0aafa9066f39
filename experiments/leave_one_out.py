"""A leave-one-out baseline written outside pgjax: a step weighting of one's own, trained with everything pgjax has.

Each step's reward-to-go G_t,e less the mean reward-to-go of the update's other
episodes at the same step t (those still running at t); a step no other episode
reaches keeps G_t,e. The baseline of an episode never uses the episode itself,
so the estimator stays unbiased (the RLOO baseline of Kool et al., 2019, per step).

    python -m pgjax.train --weighting leave_one_out:weights --baseline none --out runs/loo    # PYTHONPATH=experiments
    python experiments/leave_one_out.py       # the default and this, 64 seeds each, compared by pgjax.compare

From Python: `pgjax.make_train(config, weighting=weights)`.
"""

from __future__ import annotations

import jax.numpy as jnp

from pgjax.algo.weights import discounted_returns


def weights(traj, hparams):
    """The weight of each step, [T, E]: G_t,e minus the mean G_t,e' of the other episodes e' alive at t.

    Args:
      traj: one run's `pgjax.algo.rollout.Trajectory` (reward, valid: [T, E], time-major).
      hparams: its `Hyperparams` (gamma).
    """
    returns = discounted_returns(traj.reward, hparams.gamma)  # [T, E], zero past each episode
    alive = traj.valid.astype(jnp.float32)
    others = alive.sum(axis=1, keepdims=True) - alive  # episodes other than e alive at t
    others_total = (returns * alive).sum(axis=1, keepdims=True) - returns * alive
    return returns - jnp.where(others > 0, others_total / jnp.maximum(others, 1.0), 0.0)


def main() -> None:
    """Train the default preset and the same with this weighting on 64 seeds each, then compare them."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    budget = sys.argv[1:] or ["--num-updates", "100"]
    with tempfile.TemporaryDirectory() as folder:
        runs = {"default": [], "loo": ["--weighting", "leave_one_out:weights", "--baseline", "none"]}
        for name, flags in runs.items():
            subprocess.run([sys.executable, "-m", "pgjax.train", "--quiet", "--num-seeds", "64", *budget, *flags,
                            "--out", f"{folder}/{name}"], check=True, env=env)
        subprocess.run([sys.executable, "-m", "pgjax.compare", f"{folder}/default", f"{folder}/loo", "--out",
                        f"{folder}/compared"], check=True, env=env)


if __name__ == "__main__":
    main()
