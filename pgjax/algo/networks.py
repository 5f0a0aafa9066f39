"""Networks: Flax modules from observations to the output that parameterises the action distribution.

`MLPPolicy` (observations flattened, then dense layers) and `CNNPolicy` (3x3
convolutions over an image observation [H, W, C], then dense layers; the
MinAtar paper's network is one layer of 16 channels and 128 hidden units).
Their output `out` is logits [..., A] for a categorical policy, or [..., 2A]
(mean, then the learned state-independent log std) for a Gaussian one
(`pgjax.algo.distributions`).

They are the plain reference modules; the fast paths (`pgjax.algo.fast.networks`)
swap in an MLP with a hand-written feature-major backward pass and im2col
convolutions for the CNN, with the same parameters.
Parameters are a plain pytree and `module.apply({"params": p}, obs)` is pure.
Layers are initialised as PyTorch's `nn.Linear` / `nn.Conv2d` are (weights and
biases uniform in +-1/sqrt(fan_in)), so the tutorial presets start from the same
distribution as the originals.

Networks are named in `StaticConfig.network` and built by a factory from the
registry: "mlp" and "cnn" are registered here, "gru" and "lstm" too (`pgjax.algo.recurrent`'s
`RecurrentPolicy`; the layers are `pgjax.algo.layers`'), `register_network(name, factory)`
adds one, and a name "package.module:factory" imports its factory when built
(so a run folder that names it loads in a fresh process). A factory is
`factory(spec, static, num_outputs, gaussian) -> flax.linen.Module` (see
`NetworkFactory` for what its module must compute).

`make_policy(spec, config)` and `make_value_network(spec, config)` build the
modules a config describes for an environment; `make_apply_fn` and
`make_value_fn` turn them into plain functions of (params, obs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from pgjax.algo.imports import import_object, names_code
from pgjax.algo.layers import (  # noqa: F401 - the layers, importable from here as in pgjax 0.2
    ACTIVATIONS,
    DenseWeights,
    TorchConv,
    TorchDense,
    dense_head,
    flatten,
    scaled,
    with_log_std,
)
from pgjax.algo.recurrent import (  # noqa: F401 - the recurrent policy and what the rollout needs of one
    CELLS,
    Recurrence,
    RecurrentPolicy,
    is_recurrent,
    orthogonal_one_at_a_time,
    recurrence,
)

if TYPE_CHECKING:
    from pgjax.algo.config import Config, StaticConfig
    from pgjax.algo.envs import EnvSpec


class MLPPolicy(nn.Module):
    """obs [..., *obs_shape] -> out: logits [..., num_actions], or [..., 2 num_actions] if `gaussian`.

    Attributes:
      num_actions: A, actions (Discrete) or action dimensions (Box, `gaussian`).
      hidden: hidden layer widths; activation: their nonlinearity.
      obs_dims: trailing axes of the input that form one observation (flattened).
      gaussian: output the mean and log standard deviation of a Gaussian.
      obs_scale: the input's multiplier (`scaled`; `EnvSpec.obs_scale`).
    """

    num_actions: int
    hidden: Sequence[int] = (32,)
    activation: str = "relu"
    obs_dims: int = 1
    gaussian: bool = False
    obs_scale: float = 1.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = flatten(scaled(obs, self.obs_scale), self.obs_dims)
        out = dense_head(x, self.hidden, self.num_actions, self.activation)
        return with_log_std(self, out) if self.gaussian else out


class CNNPolicy(nn.Module):
    """Image obs [..., H, W, C] (or [..., H, W]: one channel) -> out, as `MLPPolicy`.

    Each of `conv` is a 3x3 convolution ('VALID', stride 1) with that many
    channels and the activation; its output is flattened into the `hidden` dense
    layers. conv=(16,), hidden=(128,) is the network of the MinAtar paper
    (Young & Tian, 2019). `conv_layer`: the convolution's module (`TorchConv`,
    or its fast path). `obs_scale`: the input's multiplier (`scaled`).
    """

    num_actions: int
    conv: Sequence[int] = (16,)
    hidden: Sequence[int] = (128,)
    activation: str = "relu"
    obs_dims: int = 3
    gaussian: bool = False
    conv_layer: type = TorchConv
    obs_scale: float = 1.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        obs = scaled(obs, self.obs_scale)
        x = obs if self.obs_dims == 3 else obs[..., None]
        act = ACTIVATIONS[self.activation]
        for i, channels in enumerate(self.conv):
            x = act(self.conv_layer(channels, name=f"TorchConv_{i}")(x))
        out = dense_head(flatten(x, 3), self.hidden, self.num_actions, self.activation)
        return with_log_std(self, out) if self.gaussian else out


NetworkFactory = Callable[["EnvSpec", "StaticConfig", int, bool], nn.Module]
"""`factory(spec, static, num_outputs, gaussian) -> module`, a Flax module for one environment.

Args:
  spec: the environment (`pgjax.algo.envs.EnvSpec`): `obs_shape`, `num_actions`, ...
  static: the `StaticConfig`; a factory may read any of its fields (`hidden`,
    `activation`, `conv`, ...) or none.
  num_outputs: K, the outputs per observation: A (the actions, or action
    dimensions) for the policy, 1 for the value network.
  gaussian: True for the policy of a Box action space.

The module must map `obs [..., *spec.obs_shape]` (float32, any number of leading
axes; as stored, so uint8 0..255 images arrive as 0..255: the built-in networks
multiply by `spec.obs_scale`, a custom one should too) to `out [..., K]`, or
`[..., 2K]` when `gaussian`: the mean [..., :K] and the log standard deviation
[..., K:], both in normalised units (-1 and 1 are the action bounds;
`pgjax.algo.distributions`). A Gaussian module must declare a top-level parameter
"log_std" of shape [K]: the trainer overwrites it with `Hyperparams.init_log_std`
at init (the built-in networks output it, broadcast,
as the state-independent log std). `module.init(key, obs [*obs_shape])` must
work on one observation. Initialisation is the module's own; the built-in ones
use PyTorch's (`DenseWeights`, `TorchConv`), which a custom module may reuse.
"""

_NETWORKS: dict[str, NetworkFactory] = {}


def register_network(name: str, factory: NetworkFactory, *, replace: bool = False) -> NetworkFactory:
    """Register `factory` under `name`, so that `StaticConfig(network=name)` builds it.

    Args:
      name: the network's name in configs and on the command line; no ":".
      factory: builds the module (`NetworkFactory`).
      replace: allow replacing a registered network of that name.

    Returns:
      `factory`, unchanged.

    Raises:
      ValueError: an empty name or one with ":" (reserved for "package.module:factory"),
        or a name already registered without `replace=True`.
    """
    if not name or ":" in name:
        raise ValueError(f"a network name must be non-empty and without ':', got {name!r}")
    if name in _NETWORKS and not replace:
        raise ValueError(f"network '{name}' is already registered; pass replace=True to replace it")
    _NETWORKS[name] = factory
    return factory


def network_names() -> tuple[str, ...]:
    """The registered network names, in order of registration."""
    return tuple(_NETWORKS)


def check_network_name(name: str) -> None:
    """Raise ValueError for a name `network_factory` could not serve, without importing anything.

    A registered name is checked against the registry; a "package.module:factory"
    only for its form (the import happens when the network is built).
    """
    if not isinstance(name, str):
        raise ValueError(f"a network is named by a string, got {type(name).__name__}")
    if names_code(name):
        module_name, _, attr = name.partition(":")
        if not module_name or not attr or ":" in attr:
            raise ValueError(f"the network factory '{name}' is not of the form package.module:name")
        return
    if name not in _NETWORKS:
        raise ValueError(
            f"unknown network '{name}'; registered: {', '.join(_NETWORKS)} (pgjax.algo.networks.register_network "
            "adds one, or name package.module:factory)"
        )


def network_factory(name: str) -> NetworkFactory:
    """The factory of a registered name, or the one "package.module:factory" names (imported).

    Raises:
      ValueError: an unknown name (the registered ones are named), or a
        "package.module:factory" that cannot be imported or is not callable.
    """
    check_network_name(name)
    if names_code(name):
        factory = import_object(name, "network factory")
        if not callable(factory):
            raise ValueError(f"'{name}' names an object of type {type(factory).__name__}, not a network factory")
        return factory
    return _NETWORKS[name]


def _mlp(spec: EnvSpec, static: StaticConfig, num_outputs: int, gaussian: bool) -> MLPPolicy:
    return MLPPolicy(num_outputs, tuple(static.hidden), static.activation, obs_dims=len(spec.obs_shape),
                     gaussian=gaussian, obs_scale=spec.obs_scale)


def _cnn(spec: EnvSpec, static: StaticConfig, num_outputs: int, gaussian: bool) -> CNNPolicy:
    obs_dims = len(spec.obs_shape)
    if obs_dims not in (2, 3):
        raise ValueError(
            f"network 'cnn' needs image observations [H, W] or [H, W, C]; {spec.name or static.env} has "
            f"observations of shape {spec.obs_shape}: use network 'mlp'"
        )
    return CNNPolicy(num_outputs, tuple(static.conv), tuple(static.hidden), static.activation,
                     obs_dims=obs_dims, gaussian=gaussian, obs_scale=spec.obs_scale)


def _recurrent(cell: str) -> NetworkFactory:
    def factory(spec: EnvSpec, static: StaticConfig, num_outputs: int, gaussian: bool) -> RecurrentPolicy:
        return RecurrentPolicy(num_outputs, tuple(static.hidden), cell, static.activation,
                               obs_dims=len(spec.obs_shape), gaussian=gaussian, obs_scale=spec.obs_scale)

    factory.__name__ = f"_{cell}"
    return factory


_gru, _lstm = _recurrent("gru"), _recurrent("lstm")
register_network("mlp", _mlp)
register_network("cnn", _cnn)
register_network("gru", _gru)
register_network("lstm", _lstm)
BUILT_IN = (_mlp, _cnn, _gru, _lstm)


def _check_outputs(module: nn.Module, spec: EnvSpec, name: str, num_outputs: int, gaussian: bool) -> None:
    """Trace (compute nothing) a custom module's init and apply; check the `NetworkFactory` contract."""
    width = 2 * num_outputs if gaussian else num_outputs
    try:
        params = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(spec.obs_shape))["params"])
        out = jax.eval_shape(lambda p: module.apply({"params": p}, jnp.zeros((2, *spec.obs_shape))), params)
    except Exception as error:
        message = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(f"network '{name}' fails on observations of shape {spec.obs_shape}: "
                         f"{type(error).__name__}: {message}") from error
    if getattr(out, "shape", None) != (2, width):
        what = "the mean and log std of each action dimension" if gaussian else "one output per action"
        raise ValueError(f"network '{name}' maps 2 observations to outputs of shape {getattr(out, 'shape', out)}; "
                         f"it must give (2, {width}), {what}")
    if gaussian and getattr(params.get("log_std"), "shape", None) != (num_outputs,):
        raise ValueError(f"network '{name}' serves a Gaussian policy: it must declare a top-level parameter "
                         f"'log_std' of shape ({num_outputs},), which the trainer sets to init_log_std")


def _network(spec: EnvSpec, static: StaticConfig, num_outputs: int, gaussian: bool) -> nn.Module:
    factory = network_factory(static.network)
    if factory in BUILT_IN:
        return factory(spec, static, num_outputs, gaussian)
    name = static.network
    try:
        module = factory(spec, static, num_outputs, gaussian)
    except Exception as error:
        message = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(f"calling the network factory '{name}' failed: {type(error).__name__}: {message} (a "
                         "factory is called as factory(spec, static, num_outputs, gaussian))") from error
    except BaseException as error:  # sys.exit or KeyboardInterrupt inside the factory: not pgjax's own exit or stop
        what = (f"it ended the process (sys.exit({error.code!r}))" if isinstance(error, SystemExit)
                else f"it raised {type(error).__name__}")
        raise ValueError(f"calling the network factory '{name}' failed: {what}; a factory must return a "
                         "flax.linen.Module") from None
    if not isinstance(module, nn.Module):
        raise ValueError(f"the network factory '{name}' returned an object of type {type(module).__name__}, not a "
                         "flax.linen.Module")
    _check_outputs(module, spec, name, num_outputs, gaussian)
    return module


def make_policy(spec: EnvSpec, config: Config) -> nn.Module:
    """The Flax policy module the config describes (`StaticConfig.network`), for this environment.

    Its output parameterises `make_distribution(spec, config.static.squash)`: logits [..., A] for
    Discrete actions, a Gaussian's mean and log std [..., 2A] for Box actions.

    Raises:
      ValueError: an unknown network, one that does not fit the environment
        (e.g. "cnn" on vector observations), or a custom one whose outputs or
        "log_std" break the `NetworkFactory` contract (checked by tracing).
    """
    return _network(spec, config.static, spec.num_actions, spec.action_kind == "continuous")


def make_value_network(spec: EnvSpec, config: Config) -> nn.Module:
    """The value network: the policy's architecture (its factory) with one output, V(s)."""
    return _network(spec, config.static, 1, False)


def make_apply_fn(module: nn.Module) -> Callable[[Any, jax.Array], jax.Array]:
    """`(params, obs [..., *obs_shape]) -> out [..., K]` for a policy module."""

    def apply_fn(params, obs):
        return module.apply({"params": params}, obs.astype(jnp.float32))

    return apply_fn


def make_value_fn(module: nn.Module) -> Callable[[Any, jax.Array], jax.Array]:
    """`(params, obs [..., *obs_shape]) -> V [...]` for a value network."""

    def value_fn(params, obs):
        return module.apply({"params": params}, obs.astype(jnp.float32))[..., 0]

    return value_fn
