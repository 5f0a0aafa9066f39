"""Spaces: what pgjax makes of an environment's observation and action spaces.

Spaces are recognised by their attributes, not their class (`space_kind`), so a
package's own look-alike classes serve like gymnax's.

Observations (`observation_codec`) become one array the network takes:

* a `Box` (shape, low, high) is served as it is: a vector for the MLP, an image
  [H, W] or [H, W, C] for the CNN (or flattened for the MLP). A uint8 Box of
  0..255 (camera images) is stored as uint8 and scaled by 1/255 inside the
  network (`ObsCodec.scale`), so the network sees [0, 1];
* a `Discrete(n)` observation (a state index, as FrozenLake's) becomes its
  one-hot uint8 [n]; a MultiDiscrete one (`nvec`) the one-hots of its entries,
  concatenated;
* a `Dict` or `Tuple` (a `spaces` attribute: a dict, or a tuple or list, of
  subspaces) becomes one float32 vector: each leaf encoded as above (Box
  flattened, uint8 0..255 ones scaled by 1/255; Discrete one-hot), in the order
  `jax.tree` flattens them (a dict's keys sorted), concatenated.

Actions (`action_codec`): `Discrete(n)` (categorical), a bounded 1-D `Box`
(Gaussian), or a MultiDiscrete vector of sizes `nvec` [D] (independent
categoricals, one per entry: `pgjax.algo.distributions.multi_categorical`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Encode = Callable[[Any], jax.Array]


class ObsCodec(NamedTuple):
    """How one raw observation becomes what rollouts store and the network takes.

    Attributes:
      shape: the array shape the network sees per observation, e.g. (4,), (10, 10, 4), (n,).
      dtype: what rollouts store it in: "float32", or "uint8" (one-hots, 0..255 images).
      scale: the multiplier the network applies to its float32 input: 1.0, or 1/255 for uint8 images.
      encode: raw observation (an array; an int [] for Discrete; a dict or tuple pytree for Dict and
        Tuple) -> array [*shape] of `dtype`, pure and jittable; None where the raw observation
        already is that array.
    """

    shape: tuple[int, ...]
    dtype: str
    scale: float
    encode: Encode | None


class ActionCodec(NamedTuple):
    """What the policy chooses for an action space.

    Attributes:
      kind: "discrete", "continuous" (Box) or "multi_discrete".
      num_actions: A, the actions (Discrete), action dimensions (Box), or sum(nvec) logits (MultiDiscrete).
      low, high: [A] bounds of a Box (None otherwise).
      nvec: [D] sizes of a MultiDiscrete (None otherwise).
    """

    kind: str
    num_actions: int
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    nvec: tuple[int, ...] | None = None


IMAGE_SCALE = 1.0 / 255.0


def space_kind(space: Any) -> str | None:
    """What a space is, recognised by its attributes rather than its class.

    Args:
      space: an observation or action space.

    Returns:
      "dict" or "tuple" for a composite (`spaces`: a dict, or a tuple or list); "multi_discrete"
      for a vector of sizes (`nvec`); "box" for one shaped like gymnax's `Box` (`shape`, `low`
      and `high`); "discrete" for one like its `Discrete` (a scalar `n`, no `low`/`high`);
      None for anything else.
    """
    children = getattr(space, "spaces", None)
    if children is not None:
        if isinstance(children, Mapping):
            return "dict"
        return "tuple" if isinstance(children, (tuple, list)) else None
    if hasattr(space, "nvec"):
        return "multi_discrete"
    if all(hasattr(space, name) for name in ("shape", "low", "high")):
        return "box"
    n = getattr(space, "n", None)
    if n is not None and np.ndim(n) == 0:
        return "discrete"
    return None


def is_image_bytes(space: Any) -> bool:
    """True for a uint8 Box of 0..255 (camera images): stored as uint8, scaled by 1/255 in the network.

    A 0/1 Box (MinAtar's maps, float32 or uint8) is not one: only high 255 everywhere is.
    """
    if space_kind(space) != "box" or np.dtype(getattr(space, "dtype", np.float32)) != np.uint8:
        return False
    return bool(np.all(np.asarray(space.low) == 0) and np.all(np.asarray(space.high) == 255))


def _nvec(space: Any, name: str, what: str) -> tuple[int, ...]:
    nvec = np.asarray(space.nvec)
    if nvec.ndim != 1 or nvec.size < 1 or np.any(nvec < 1):
        raise ValueError(f"{name} has a MultiDiscrete {what} space of sizes {nvec.tolist()}; pgjax takes a vector "
                         "of at least one size, each >= 1")
    return tuple(int(n) for n in nvec)


def _one_hots(nvec: tuple[int, ...], dtype: Any) -> Encode:
    """int [D] -> the one-hots of its entries concatenated, [sum(nvec)]."""
    return lambda x: jnp.concatenate([jax.nn.one_hot(x[i], n, dtype=dtype) for i, n in enumerate(nvec)])


def _leaf(space: Any, name: str) -> tuple[int, Encode]:
    """(size, raw leaf -> float32 [size]) of one part of a Dict or Tuple observation."""
    kind = space_kind(space)
    if kind == "box":
        size = math.prod(int(n) for n in space.shape)
        scale = IMAGE_SCALE if is_image_bytes(space) else 1.0
        if scale == 1.0:
            return size, lambda x: jnp.asarray(x, jnp.float32).reshape(size)
        return size, lambda x: jnp.asarray(x, jnp.float32).reshape(size) * scale
    if kind == "discrete":
        n = int(space.n)
        return n, lambda x: jax.nn.one_hot(x, n, dtype=jnp.float32).reshape(n)
    if kind == "multi_discrete":
        nvec = _nvec(space, name, "observation")
        return sum(nvec), _one_hots(nvec, jnp.float32)
    if kind in ("dict", "tuple"):
        keys = sorted(space.spaces) if kind == "dict" else range(len(space.spaces))
        parts = [(key, *_leaf(space.spaces[key], name)) for key in keys]

        def encode(x):
            def part(key):
                return x[key] if kind == "tuple" or isinstance(x, Mapping) else getattr(x, key)

            return jnp.concatenate([fn(part(key)) for key, _, fn in parts])

        return sum(size for _, size, _ in parts), encode
    raise ValueError(_refusal(space, name))


def _refusal(space: Any, name: str) -> str:
    return (f"{name} has a {type(space).__name__} observation space; pgjax's networks take a Box (shape, low and "
            "high), a Discrete (a scalar n: one-hot), a MultiDiscrete (nvec) or a Dict or Tuple of these")


def observation_codec(space: Any, name: str) -> ObsCodec:
    """How pgjax serves observations of `space` (the module's docstring lists the spaces).

    Args:
      space: the environment's observation space.
      name: what names the environment in messages.

    Returns:
      The `ObsCodec`: shape, stored dtype, the network's scale, and the encoding (None for a Box).

    Raises:
      ValueError: one line naming the space and what pgjax takes: an unknown space, a Box of
        other than 1 to 3 axes or with a size 0, a Discrete of n < 1.
    """
    kind = space_kind(space)
    if kind == "box":
        shape = tuple(int(n) for n in space.shape)
        if not 1 <= len(shape) <= 3:
            raise ValueError(f"{name} has observations of shape {shape}; pgjax's networks take a vector or an image "
                             "[H, W] or [H, W, C]")
        if 0 in shape:
            raise ValueError(f"{name} has observations of shape {shape}, which hold no number; pgjax's networks "
                             "need at least one (every size >= 1)")
        if is_image_bytes(space):
            return ObsCodec(shape, "uint8", IMAGE_SCALE, None)
        return ObsCodec(shape, "float32", 1.0, None)
    if kind == "discrete":
        n = int(space.n)
        if n < 1:
            raise ValueError(f"{name} has a Discrete({n}) observation space; pgjax one-hots it and needs n >= 1")
        return ObsCodec((n,), "uint8", 1.0, lambda x: jax.nn.one_hot(x, n, dtype=jnp.uint8).reshape(n))
    if kind == "multi_discrete":
        nvec = _nvec(space, name, "observation")
        return ObsCodec((sum(nvec),), "uint8", 1.0, _one_hots(nvec, jnp.uint8))
    if kind in ("dict", "tuple"):
        size, encode = _leaf(space, name)
        if size < 1:
            raise ValueError(f"{name} has a {type(space).__name__} observation space that holds no number")
        return ObsCodec((size,), "float32", 1.0, encode)
    raise ValueError(_refusal(space, name))


def _box_actions(space: Any, name: str) -> ActionCodec:
    shape = tuple(int(n) for n in space.shape)
    low = np.broadcast_to(np.asarray(space.low, np.float64), shape).reshape(-1)
    high = np.broadcast_to(np.asarray(space.high, np.float64), shape).reshape(-1)
    if len(shape) != 1:
        raise ValueError(
            f"{name} has a Box action space of shape {shape}; pgjax's Gaussian policy takes a vector of actions"
        )
    if shape[0] < 1:
        raise ValueError(f"{name} has a Box action space of shape {shape}: a Gaussian policy needs at least one "
                         "action dimension")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
        raise ValueError(
            f"{name} has an unbounded Box action space (low {low}, high {high}); pgjax's Gaussian policy "
            "clips or squashes its actions to finite bounds"
        )
    return ActionCodec("continuous", shape[0], tuple(low.tolist()), tuple(high.tolist()))


def action_codec(space: Any, name: str) -> ActionCodec:
    """What the policy chooses for an action space: categorical, Gaussian or multi-categorical.

    Args:
      space: the environment's action space: Discrete (n), a bounded 1-D Box, or MultiDiscrete (nvec [D]).
      name: what names the environment in messages.

    Returns:
      The `ActionCodec`.

    Raises:
      ValueError: one line: another space, n < 1, a Box not a vector, unbounded or empty, an nvec
        not a vector of sizes >= 1.
    """
    kind = space_kind(space)
    if kind == "discrete":
        if int(space.n) < 1:
            raise ValueError(f"{name} has a Discrete({int(space.n)}) action space: a policy needs at least "
                             "one action to choose (n >= 1)")
        return ActionCodec("discrete", int(space.n))
    if kind == "box":
        return _box_actions(space, name)
    if kind == "multi_discrete":
        nvec = _nvec(space, name, "action")
        return ActionCodec("multi_discrete", sum(nvec), nvec=nvec)
    raise ValueError(
        f"{name} has a {type(space).__name__} action space; pgjax's policies take a discrete one "
        "(a scalar n, as gymnax's Discrete: categorical), a bounded vector (shape, low and high, as its Box: "
        "Gaussian) or a MultiDiscrete (nvec: a categorical per entry)"
    )


def encode_batch(spec: Any) -> Callable[[Any], jax.Array]:
    """`spec.encode_obs` over a leading batch axis: raw observations [E, ...] (a pytree) -> [E, *obs_shape].

    The identity (the function returns its argument, adding nothing to a trace) where
    `spec.encode_obs` is None, as for every Box observation space.
    """
    if getattr(spec, "encode_obs", None) is None:
        return lambda obs: obs
    return jax.vmap(spec.encode_obs)


def action_struct(spec: Any) -> jax.ShapeDtypeStruct:
    """One action as the environment's step_env takes it, for tracing: int32 [] (Discrete),
    float32 [A] (Box), int32 [D] (MultiDiscrete)."""
    if spec.action_kind == "continuous":
        return jax.ShapeDtypeStruct((spec.num_actions,), jnp.float32)
    if spec.action_kind == "multi_discrete":
        return jax.ShapeDtypeStruct((len(spec.action_nvec),), jnp.int32)
    return jax.ShapeDtypeStruct((), jnp.int32)


def encoded_struct(spec: Any, obs: Any) -> Any:
    """What `spec.encode_obs` makes of one traced raw observation (a pytree of `jax.ShapeDtypeStruct`s, as
    `jax.eval_shape` of reset gives), for checking it against `spec.obs_shape`; `obs` itself where
    `encode_obs` is None. Raises what the encoding raises on a raw observation of the wrong structure."""
    return obs if getattr(spec, "encode_obs", None) is None else jax.eval_shape(spec.encode_obs, obs)
