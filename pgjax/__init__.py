"""pgjax: many-seed policy-gradient training in JAX.

    from pgjax import PRESETS, make_train
    train = make_train(PRESETS["default"])               # pure train(key) -> (state, metrics)
    state, metrics = jax.jit(jax.vmap(train))(keys)      # N seeds in one call

The path config -> make_train -> train(key) -> (state, metrics) -> report runs
through `pgjax.config`, `pgjax.trainer` (built on `pgjax.rollout`,
`pgjax.returns` and `pgjax.loss`), `pgjax.parallel` and `pgjax.report`;
`python -m pgjax.train` is the command line.

Importing pgjax starts no JAX backend, so `pgjax.configure_cpu()` can still
give XLA one CPU device per core; the heavier modules load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from pgjax.parallel import configure_cpu

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "pgjax.config",
    "StaticConfig": "pgjax.config",
    "Hyperparams": "pgjax.config",
    "PRESETS": "pgjax.config",
    "ENV_PRESETS": "pgjax.config",
    "preset_config": "pgjax.config",
    "make_train": "pgjax.trainer",
    "TrainState": "pgjax.trainer",
    "Metrics": "pgjax.trainer",
    "make_env": "pgjax.envs",
    "MLPPolicy": "pgjax.policy",
    "CNNPolicy": "pgjax.policy",
    "train_runs": "pgjax.parallel",
    "load_params": "pgjax.outputs",
    "load_metrics": "pgjax.outputs",
    "load_summary": "pgjax.outputs",
    "load_group_metrics": "pgjax.outputs",
    "load_run_config": "pgjax.outputs",
    "load_policy": "pgjax.evaluate",
    "group_statistics": "pgjax.stats",
}

__all__ = ["configure_cpu", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pgjax' has no attribute {name!r}")
