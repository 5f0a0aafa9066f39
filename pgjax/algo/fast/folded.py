"""Fold `jax.vmap` over runs into one leading run axis.

A `lax.while_loop` whose stopping test depends on per-run data becomes, under
`jax.vmap`, a loop with a *batched* predicate: JAX then runs every carry through a
`select` on each iteration, which copies whole rollout buffers per step. The
fast paths wrapped here are written for an explicit run axis instead, so their
loops test one unbatched predicate ("has every episode of every run ended?") and
stop as soon as the whole batch is done, and their blocks span runs.

`over_runs(batched_fn, fold)` gives such a function the interface of one run:
`fold_vmap` where `FastPaths.fold_runs` is on, `at_one_run` where it is off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap


def _broadcast_unbatched(tree: Any, batched: Any, size: int) -> Any:
    """Give every leaf of `tree` a leading axis of `size`, broadcasting unbatched ones."""
    return jax.tree.map(
        lambda x, b: x if b else jnp.broadcast_to(x, (size,) + jnp.shape(x)), tree, batched
    )


def _all_batched(tree: Any) -> Any:
    return jax.tree.map(lambda _: True, tree)


def fold_vmap(batched_fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a function over a run axis into a function of one run.

    Args:
      batched_fn: takes pytrees of arrays whose leaves all carry a leading run
        axis `[B, ...]` and returns pytrees whose leaves do too. Runs must not
        interact, except that loops may run until the slowest run has finished.

    Returns:
      `fn(*args)` for a single run (no run axis). Called directly it runs
      `batched_fn` with `B = 1`; under `jax.vmap`, at any nesting depth, the
      mapped axes are folded into `B`, so a vmap over N seeds (or over a grid and
      then seeds) calls `batched_fn` once with `B = N` (or grid x seeds).
      Like any `custom_vmap` function it cannot be differentiated through; pgjax
      uses it for rollouts and for computing gradients, never inside `jax.grad`.
    """

    @custom_vmap
    def many(*args):
        return batched_fn(*args)

    @many.def_vmap
    def _many_rule(axis_size, in_batched, *args):
        args = _broadcast_unbatched(args, tuple(in_batched), axis_size)
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), args)
        out = many(*flat)
        out = jax.tree.map(lambda x: x.reshape((axis_size, -1) + x.shape[1:]), out)
        return out, _all_batched(out)

    @custom_vmap
    def one(*args):
        out = many(*jax.tree.map(lambda x: x[None], args))
        return jax.tree.map(lambda x: x[0], out)

    @one.def_vmap
    def _one_rule(axis_size, in_batched, *args):
        out = many(*_broadcast_unbatched(args, tuple(in_batched), axis_size))
        return out, _all_batched(out)

    return one


def at_one_run(batched_fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fold_vmap`'s interface without the fold: a function of one run that calls `batched_fn` at B = 1.

    Under `jax.vmap` it is plainly batched by JAX (loops get a batched predicate).
    """

    def one(*args):
        out = batched_fn(*jax.tree.map(lambda x: x[None], args))
        return jax.tree.map(lambda x: x[0], out)

    return one


def over_runs(batched_fn: Callable[..., Any], fold: bool = True) -> Callable[..., Any]:
    """`fold_vmap(batched_fn)` if `fold` (`FastPaths.fold_runs`), else `at_one_run(batched_fn)`."""
    return fold_vmap(batched_fn) if fold else at_one_run(batched_fn)


def pad_runs(tree: Any, num_runs: int, multiple: int) -> Any:
    """Repeat the last run so that the run axis (leading, of `num_runs`) is a multiple of `multiple`."""
    pad = -num_runs % multiple
    if pad == 0:
        return tree
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), tree)
