"""Throughput, measured: the environment's limit, training and rollout, compile times (`python -m pgjax.bench`).

The command (`pgjax.commands.bench`) parses and prints; these functions measure.
"""

from __future__ import annotations

import dataclasses
import os
import resource

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.algo.config import Config, FastPaths
from pgjax.algo.envs import EnvSpec, env_for, reset_function, step_function
from pgjax.algo.pieces import choose_collect
from pgjax.algo.policy import make_apply_fn, make_distribution, make_policy
from pgjax.algo.trainer import make_train
from pgjax.results import summary
from pgjax.running import footprint, memory
from pgjax.running.devices import cpu_model, device_memory_stats
from pgjax.running.sharding import compile_sharded, run_sharded, train_runs


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def checksum(tree) -> jax.Array:
    """float32 scalar: the sum of every number in `tree` (an observation, a state: bools and integers counted
    too; PRNG keys left out). What the environment limit keeps of each step, so that XLA cannot drop the
    dynamics that make them where the reward does not depend on them."""
    leaves = [jnp.asarray(leaf) for leaf in jax.tree.leaves(tree)]
    kept = [leaf for leaf in leaves if not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)]
    return sum((jnp.sum(leaf.astype(jnp.float32)) for leaf in kept), jnp.float32(0.0))


def env_limit_function(spec: EnvSpec, num_steps: int):
    """`random_steps(keys [n]) -> float32 [n]`: `n` environments reset, then `num_steps` steps of uniformly
    random actions under scan and vmap (the environment's own `step`, auto-resetting).

    Every step's observation, state, reward, terminated and truncated reach the result (`checksum`, summed
    over the steps), so that XLA keeps the whole step: a result of the rewards alone lets it drop the
    dynamics of an environment whose reward does not depend on its state (brax's: 139 M "steps/s" where it
    steps 27.6 k). The result itself means nothing.
    """
    env, params = spec.env, spec.params
    step = jax.vmap(step_function(env, spec.route), in_axes=(0, 0, 0, None))  # its own step: auto-resets

    def random_steps(keys):  # keys [n]: this device's environments
        n = keys.shape[0]
        _, state = jax.vmap(reset_function(env), in_axes=(0, None))(keys, params)

        def one_step(carry, _):
            state, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            if spec.action_kind == "continuous":  # uniform over the Box
                action = jax.random.uniform(action_key, (n, spec.num_actions), minval=jnp.asarray(spec.action_low),
                                            maxval=jnp.asarray(spec.action_high))
            elif spec.action_kind == "multi_discrete":  # uniform per entry
                action = jax.random.randint(action_key, (n, len(spec.action_nvec)), 0, jnp.asarray(spec.action_nvec))
            else:
                action = jax.random.randint(action_key, (n,), 0, spec.num_actions)
            obs, state, reward, terminated, truncated = step(jax.random.split(step_key, n), state, action, params)
            return (state, key), checksum((obs, state, reward, terminated, truncated))

        _, kept = jax.lax.scan(one_step, (state, keys[0]), None, num_steps)
        return jnp.broadcast_to(kept.sum(), (n,))

    return random_steps


def env_limit(spec: EnvSpec, num_envs: int, num_steps: int) -> dict:
    """Random-action steps per second of `num_envs` environments under scan and vmap (`env_limit_function`)."""
    keys = jax.random.split(jax.random.key(0), num_envs)
    _, info = run_sharded(env_limit_function(spec, num_steps), keys)
    return {**info, "steps_per_second": num_envs * num_steps / info["run_seconds"]}


def bench_train(config: Config, paths: FastPaths = FastPaths()):
    """`make_train(config)` with the entropy bonus fixed when tracing: every benchmarked run has config's hparams."""
    return make_train(config, fast=dataclasses.replace(paths, entropy_bonus=config.hparams.entropy_coef != 0))


def training(config: Config, num_runs: int, paths: FastPaths = FastPaths()) -> tuple[dict, object]:
    """Useful env steps per second of the real training function for `num_runs` seeds."""
    keys = jax.vmap(jax.random.key)(jnp.arange(num_runs))
    hparams = config.hparams.broadcast(num_runs)
    state, metrics, info = train_runs(bench_train(config, paths), keys, hparams)
    useful = int(np.asarray(metrics.env_steps)[:, -1].sum())
    computed = int((np.asarray(metrics.loop_steps) * config.static.episodes_per_update).sum())
    threshold = env_for(config.static).solve_threshold
    runs = [summary.run_result(r, s, threshold) for r, s in zip(np.asarray(metrics.episode_returns),
                                                               np.asarray(metrics.env_steps))]
    result = {
        **info,
        "useful_env_steps": useful,
        "computed_env_steps": computed,
        "steps_per_second": useful / info["run_seconds"],
        "final_return_mean": float(np.mean([r["final_return"] for r in runs])),
    }
    if threshold is not None:
        result["solved"] = sum(r["solved"] for r in runs)
    return result, state.params


def rollout(config: Config, params, num_runs: int) -> dict:
    """Useful env steps per second of episode collection alone, with given policies."""
    spec = env_for(config.static)
    collect = choose_collect(spec, make_apply_fn(make_policy(spec, config)), config.static.episodes_per_update,
                           make_distribution(spec, config.static.squash))

    def collect_many(params, key):
        def one(_, k):
            return None, collect(params, k).valid.sum()

        _, steps = jax.lax.scan(one, None, jax.random.split(key, config.static.num_updates))
        return steps.sum()

    keys = jax.vmap(jax.random.key)(jnp.arange(num_runs) + 10_000)
    steps, info = run_sharded(jax.vmap(collect_many), params, keys)
    useful = int(np.asarray(steps).sum())
    return {**info, "useful_env_steps": useful, "steps_per_second": useful / info["run_seconds"]}


def compile_seconds(config: Config, num_runs: int, num_updates: int, paths: FastPaths = FastPaths()) -> float:
    """Trace and compile time of the sharded training function alone."""
    config = dataclasses.replace(config, static=dataclasses.replace(config.static, num_updates=num_updates))
    keys = jax.vmap(jax.random.key)(jnp.arange(num_runs))
    return compile_sharded(jax.vmap(bench_train(config, paths)), keys, config.hparams.broadcast(num_runs))[2]


def device_description() -> dict:
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "num_devices": len(jax.devices()),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes_limit": (device_memory() or {}).get("bytes_limit"),
    }


def device_memory() -> dict | None:
    """The first device's own memory counters (`Device.memory_stats()`: "bytes_limit", "bytes_in_use",
    "peak_bytes_in_use", ... in bytes); None where the device keeps none (CPU)."""
    return device_memory_stats(jax.devices()[0])


def rung_fits(config: Config, num_runs: int) -> str | None:
    """Why `num_runs` runs trained at once would not fit in half the devices' free memory, or None if they fit.

    The estimate of `pgjax.running.memory` with the whole training as one segment
    (the benchmark keeps every update's metrics on the devices).
    """
    static = config.static
    devices = jax.devices()
    per_run = memory.run_bytes(static, static.num_updates)
    per_device = memory.device_bytes(static)
    available = memory.available_bytes(devices)
    try:
        fits = memory.chunk_size(num_runs, per_run, per_device, len(devices), available)
    except ValueError as error:
        return str(error)
    if fits < num_runs:
        return (f"{num_runs} runs need about {footprint.format_bytes(num_runs * per_run)}; half of the "
                f"{footprint.format_bytes(available)} free holds {fits}")
    return None


def measure_rung(config: Config, spec: EnvSpec, num_runs: int, env_steps: int | None,
                 paths: FastPaths = FastPaths()) -> dict:
    """One row of the ladder: the env limit, training and rollout of `num_runs` runs."""
    num_envs = num_runs * config.static.episodes_per_update
    limit = env_limit(spec, num_envs, max(1000, 20_000_000 // num_envs) if env_steps is None else env_steps)
    train_result, params = training(config, num_runs, paths)
    roll = rollout(config, params, num_runs)
    return {
        "runs": num_runs,
        "parallel_envs": num_envs,
        "env_limit": limit,
        "training": train_result,
        "rollout": roll,
        "training_fraction_of_env_limit": train_result["steps_per_second"] / limit["steps_per_second"],
        "rollout_fraction_of_env_limit": roll["steps_per_second"] / limit["steps_per_second"],
        "peak_rss_bytes": peak_rss_bytes(),
        "device_memory": device_memory(),
    }
