"""pgjax: many-seed policy-gradient training in JAX.

    from pgjax import PRESETS, make_train
    train = make_train(PRESETS["default"])               # pure train(key) -> (state, metrics)
    state, metrics = jax.jit(jax.vmap(train))(keys)      # N seeds in one call

Four layers, each importing only those before it:

* `pgjax.algo`: the algorithm as pure functions (config, presets, envs, policy,
  rollout, weights, loss, trainer, gradients; `pieces` chooses each piece or its fast path);
* `pgjax.running`: the install check, devices and XLA setup, sharding, memory,
  grids, sweeps, checkpoints, progress;
* `pgjax.results`: the run folder's files, summary.json, statistics, tables,
  plots, evaluation of trained policies;
* `pgjax.commands`: the commands, `python -m pgjax.train`, `pgjax.evaluate`, `pgjax.plot`,
  `pgjax.compare`, `pgjax.bench`, `pgjax.gradients` (parse, call, print).

Importing pgjax starts no JAX backend, so `pgjax.configure_cpu()` can still
give XLA one CPU device per core; the heavier modules load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from pgjax.running.devices import configure_cpu

__version__ = "1.0.0"

_EXPORTS = {
    # the algorithm: pure functions
    "Config": "pgjax.algo.config",
    "StaticConfig": "pgjax.algo.config",
    "Hyperparams": "pgjax.algo.config",
    "validate_config": "pgjax.algo.validation",
    "PRESETS": "pgjax.algo.presets",
    "ENV_PRESETS": "pgjax.algo.presets",
    "preset_config": "pgjax.algo.presets",
    "make_train": "pgjax.algo.trainer",
    "make_trainer": "pgjax.algo.trainer",
    "RunState": "pgjax.algo.trainer",
    "Metrics": "pgjax.algo.trainer",
    "make_env": "pgjax.algo.envs",
    "SUITES": "pgjax.algo.suites",
    "suite_names": "pgjax.algo.suites",
    "MLPPolicy": "pgjax.algo.policy",
    "CNNPolicy": "pgjax.algo.policy",
    "RecurrentPolicy": "pgjax.algo.policy",
    "register_network": "pgjax.algo.policy",
    "FastPaths": "pgjax.algo.pieces",
    "make_episode_gradients": "pgjax.algo.gradients",
    "estimator_statistics": "pgjax.algo.gradients",
    "reference_gradient": "pgjax.algo.gradients",
    "compared_weightings": "pgjax.algo.gradients",
    # running: devices, sweeps, checkpoints
    "train_runs": "pgjax.running.sharding",
    # results: files, statistics, plots, evaluation
    "load_params": "pgjax.running.run_folder.loading",
    "load_value_params": "pgjax.running.run_folder.loading",
    "load_metrics": "pgjax.running.run_folder.loading",
    "load_summary": "pgjax.running.run_folder.loading",
    "load_group_metrics": "pgjax.running.run_folder.loading",
    "load_run_config": "pgjax.running.run_folder.loading",
    "load_results": "pgjax.results.exports",
    "load_policy": "pgjax.results.evaluation",
    "group_statistics": "pgjax.results.stats",
    "measure_gradients": "pgjax.results.gradient_stats",
    "paired_statistics": "pgjax.results.gradient_stats",
}

__all__ = ["configure_cpu", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """The exported `name`, imported on first use; the install check (`pgjax.running.install`) runs first."""
    if name in _EXPORTS:
        from pgjax.running.install import check_installed

        check_installed()
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pgjax' has no attribute {name!r}")
