"""The policy: Flax networks from observations to `out`, and the action distribution `out` parameterises.

Networks. `MLPPolicy` (observations flattened, then dense layers), `CNNPolicy`
(3x3 convolutions over an image observation [H, W, C], then dense layers; the
MinAtar paper's network is one layer of 16 channels and 128 hidden units) and
`RecurrentPolicy` (a dense torso, Flax's GRU or LSTM cell, a linear output,
carried step by step). Their output `out` is logits [..., A] for a categorical
policy, or [..., 2A] (mean, then the learned state-independent log std) for a
Gaussian one. Parameters are a plain pytree and `module.apply({"params": p},
obs)` is pure. Layers are initialised as PyTorch's `nn.Linear` / `nn.Conv2d`
are (weights and biases uniform in +-1/sqrt(fan_in)), so the tutorial presets
start from the same distribution as the originals; a custom network may reuse
them (`TorchDense`, `TorchConv`, `DenseWeights`, `dense_head`).

Networks are named in `StaticConfig.network` and built by a factory from the
registry: "mlp", "cnn", "gru" and "lstm" are registered here,
`register_network(name, factory)` adds one, and a name "package.module:factory"
imports its factory when built (so a run folder that names it loads in a fresh
process). A factory is `factory(spec, static, num_outputs, gaussian) ->
flax.linen.Module` (see `NetworkFactory` for what its module must compute).
`make_policy(spec, config)` and `make_value_network(spec, config)` build the
modules a config describes; `make_apply_fn` and `make_value_fn` turn them into
plain functions of (params, obs). `recurrence(module)` gives the rollout a
recurrent module's two plain functions, the zero state and one step; a custom
module with `initial_carry` and `step` methods is recurrent too.

Distributions (`Distribution`: sample, log-probability, entropy, greedy action):

* categorical (Discrete action spaces): `out` is logits [..., A];
* multi-categorical (MultiDiscrete action spaces, sizes nvec [D]): `out` is the D
  logit vectors concatenated [..., sum(nvec)], one independent categorical per entry;
* Gaussian (Box action spaces): `out` is [..., 2A], the mean [..., :A] and the
  learned, state-independent log standard deviation [..., A:]. Both are in
  normalised units: u = -1 and 1 are the action space's bounds (`Distribution.to_env`).

`make_distribution(spec, squash)` picks the one for an environment's action space.
The fast paths (`pgjax.algo.fast.layers`) swap in an MLP with a hand-written
feature-major backward pass and im2col convolutions for the CNN, with the same
parameters, and sample categoricals by inverse CDF.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from pgjax.algo.config import Config, Squash, StaticConfig
from pgjax.algo.envs import EnvSpec
from pgjax.algo.imports import import_callable, names_code, well_formed

# ---- layers (PyTorch's initialisation) and what every network applies
ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


def _torch_uniform(fan_in: int) -> Callable:
    bound = 1.0 / jnp.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class _Linear(nn.Module):
    """Declares the kernel [fan_in, features] and bias [features] (PyTorch's initialisation)."""

    features: int

    @nn.compact
    def __call__(self, fan_in: int) -> tuple[jax.Array, jax.Array]:
        init = _torch_uniform(fan_in)
        return self.param("kernel", init, (fan_in, self.features)), self.param("bias", init, (self.features,))


class DenseWeights(nn.Module):
    """A dense layer's kernel [fan_in, features] and bias [features], initialised as PyTorch's `nn.Linear`.

    They live at "<name>/Dense_0/kernel" and ".../bias", where earlier versions'
    `nn.Dense` layers kept them, so parameters (and their initial values) match.
    """

    features: int

    @nn.compact
    def __call__(self, fan_in: int) -> tuple[jax.Array, jax.Array]:
        return _Linear(self.features, name="Dense_0")(fan_in)


class TorchDense(nn.Module):
    """A dense layer x [..., fan_in] -> x @ kernel + bias [..., features], initialised as PyTorch's `nn.Linear`.

    Its kernel and bias live at "<name>/Dense_0/kernel" and ".../bias" (`DenseWeights`'s places).
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias = _Linear(self.features, name="Dense_0")(x.shape[-1])
        return x @ kernel + bias


class TorchConv(nn.Module):
    """3x3 convolution ('VALID', stride 1): [..., H, W, C] -> [..., H-2, W-2, features].

    Initialised as PyTorch's `nn.Conv2d` (uniform in +-1/sqrt(9 C)); computed by
    `lax.conv_general_dilated` (its fast path: `pgjax.algo.fast.networks.Im2colConv`).
    """

    features: int

    def weights(self, channels: int) -> tuple[jax.Array, jax.Array]:
        """The kernel [3, 3, channels, features] and bias [features] (call inside `__call__`)."""
        init = _torch_uniform(9 * channels)
        return self.param("kernel", init, (3, 3, channels, self.features)), self.param("bias", init, (self.features,))

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias = self.weights(x.shape[-1])
        h, w = x.shape[-3] - 2, x.shape[-2] - 2
        images = x.reshape((-1, *x.shape[-3:]))
        out = jax.lax.conv_general_dilated(images, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return out.reshape((*x.shape[:-3], h, w, self.features)) + bias


def flatten(obs: jax.Array, obs_dims: int) -> jax.Array:
    """[..., *obs_shape] -> [..., prod(obs_shape)], the last `obs_dims` axes being the observation's."""
    if obs_dims == 1:
        return obs
    return obs.reshape(obs.shape[: obs.ndim - obs_dims] + (-1,))


def scaled(obs: jax.Array, scale: float) -> jax.Array:
    """The network's input in its units: obs * scale (1/255 for uint8 0..255 images, `EnvSpec.obs_scale`);
    obs itself where scale is 1.0, adding nothing to the computation."""
    return obs if scale == 1.0 else obs * jnp.float32(scale)


def dense_head(x: jax.Array, hidden: Sequence[int], num_outputs: int, activation: str) -> jax.Array:
    """The `hidden` dense layers ("TorchDense_0", "TorchDense_1", ...) and the linear output layer: x -> [..., K].

    Call inside a module's compact `__call__`.
    """
    act = ACTIVATIONS[activation]
    for i, width in enumerate(hidden):
        x = act(TorchDense(width, name=f"TorchDense_{i}")(x))
    return TorchDense(num_outputs, name=f"TorchDense_{len(hidden)}")(x)


def with_log_std(module: nn.Module, out: jax.Array) -> jax.Array:
    """A Gaussian's output [mean, log_std] [..., 2A] from the mean `out` [..., A] and `module`'s "log_std" [A].

    The initial log std is set by the trainer (`Hyperparams.init_log_std`); zeros here.
    """
    log_std = module.param("log_std", nn.initializers.zeros, (out.shape[-1],))
    return jnp.concatenate([out, jnp.broadcast_to(log_std, out.shape)], axis=-1)


# ---- networks


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
`Distribution`). A Gaussian module must declare a top-level parameter
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
        if not well_formed(name):
            raise ValueError(f"the network factory '{name}' is not of the form package.module:name")
        return
    if name not in _NETWORKS:
        raise ValueError(
            f"unknown network '{name}'; registered: {', '.join(_NETWORKS)} (pgjax.algo.policy.register_network "
            "adds one, or name package.module:factory)"
        )


def network_factory(name: str) -> NetworkFactory:
    """The factory of a registered name, or the one "package.module:factory" names (imported).

    Raises:
      ValueError: an unknown name (the registered ones are named), or a
        "package.module:factory" that cannot be imported or is not callable.
    """
    if isinstance(name, str) and name in _NETWORKS:
        return _NETWORKS[name]
    check_network_name(name)
    return import_callable(name, "network factory")


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


def _network(spec: EnvSpec, static: StaticConfig, num_outputs: int, gaussian: bool, policy: bool = True
             ) -> nn.Module:
    """The module of `static.network` for `spec`; where observations end with a legal-action mask, the network is
    built for the features before it and wrapped (`Masked`): the mask is cut off, and masks a policy's logits."""
    if spec.mask_size:
        features = spec._replace(obs_shape=(spec.obs_shape[-1] - spec.mask_size,), mask_size=0)
        network = _network(features, static, num_outputs, gaussian)
        wrapper = MaskedRecurrent if is_recurrent(network) else Masked
        return wrapper(network, spec.mask_size, mask_outputs=policy)
    factory = network_factory(static.network)
    if factory in BUILT_IN:
        return factory(spec, static, num_outputs, gaussian)
    return _custom_network(factory, spec, static, num_outputs, gaussian)


def _custom_network(factory: NetworkFactory, spec: EnvSpec, static: StaticConfig, num_outputs: int,
                    gaussian: bool) -> nn.Module:
    """The module a custom factory builds, checked against the `NetworkFactory` contract (one-line errors)."""
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
    return _network(spec, config.static, 1, False, policy=False)


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


# ---- recurrent networks
CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}  # the recurrent networks' Flax cells, by network name


def orthogonal_one_at_a_time(scale: float = 1.0) -> Callable[..., jax.Array]:
    """Flax's orthogonal initializer (the cells' default recurrent kernel), one QR per call under `vmap`.

    Vmapped over seeds, `flax.linen.initializers.orthogonal` becomes one batched
    LAPACK QR, which jaxlib's CPU kernel splits over XLA's intra-op thread pool
    and then waits on from a thread of that same pool: with the cells' several
    kernels initialised side by side (an LSTM has four) every worker can end up
    waiting, and the program hangs at 0% CPU, sometimes. `sequential_vmap` turns
    the batch into a loop of single QRs, so the values are Flax's, bitwise, and
    the kernel never fans out.

    Returns:
      init(key, shape [..., n, m], dtype) -> [..., n, m], as Flax's.
    """
    flax_orthogonal = nn.initializers.orthogonal(scale)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.custom_batching.sequential_vmap(lambda k: flax_orthogonal(k, shape, dtype))(key)

    return init


class RecurrentPolicy(nn.Module):
    """A recurrent policy: obs -> dense torso -> Flax's GRU or LSTM cell -> linear output, step by step.

    `__call__(obs [T, ..., *obs_shape]) -> out [T, ..., K]` reads the leading axis
    as time: every sequence starts from the zero state at row 0 (an episode's
    first step), and `lax.scan` (lifted by `nn.scan`) carries the state down
    the rows, so differentiating it is backpropagation through the whole
    episode. A single observation `[*obs_shape]` is one step from the zero
    state. `step(carry, obs [..., *obs_shape]) -> (carry, out [..., K])` is one
    step, what the rollout calls; `initial_carry(batch_shape)` is the zero state.

    Attributes:
      num_actions: K, as `MLPPolicy`'s (1 for a value network).
      hidden: the widths of the dense torso, then the cell's: (64,) is a 64-unit
        cell on the (flattened) observation, (64, 128) a 64-unit dense layer
        before a 128-unit cell.
      cell: "gru" (`flax.linen.GRUCell`) or "lstm" (`flax.linen.LSTMCell`, whose
        state is its (c, h) pair).
      activation, obs_dims, gaussian, obs_scale: as `MLPPolicy`'s.
    """

    num_actions: int
    hidden: Sequence[int] = (64,)
    cell: str = "gru"
    activation: str = "relu"
    obs_dims: int = 1
    gaussian: bool = False
    obs_scale: float = 1.0

    def setup(self) -> None:
        *torso, width = self.hidden
        self.torso = [TorchDense(w, name=f"TorchDense_{i}") for i, w in enumerate(torso)]
        self.recurrent_cell = CELLS[self.cell](width, recurrent_kernel_init=orthogonal_one_at_a_time(),
                                               name="cell")
        self.head = TorchDense(self.num_actions, name=f"TorchDense_{len(torso)}")
        if self.gaussian:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.num_actions,))

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Any:
        """The zero state of `batch_shape` sequences: h [*batch_shape, H] (GRU) or (c, h) (LSTM)."""
        zeros = jnp.zeros(tuple(batch_shape) + (self.hidden[-1],), jnp.float32)
        return (zeros, zeros) if self.cell == "lstm" else zeros

    def step(self, carry: Any, obs: jax.Array) -> tuple[Any, jax.Array]:
        """One step: (state, obs [..., *obs_shape]) -> (next state, out [..., K] or [..., 2K])."""
        x = flatten(scaled(obs, self.obs_scale), self.obs_dims)
        act = ACTIVATIONS[self.activation]
        for layer in self.torso:
            x = act(layer(x))
        carry, y = self.recurrent_cell(carry, x)
        out = self.head(y)
        if self.gaussian:
            out = jnp.concatenate([out, jnp.broadcast_to(self.log_std, out.shape)], axis=-1)
        return carry, out

    def __call__(self, obs: jax.Array) -> jax.Array:
        if obs.ndim == self.obs_dims:  # one observation: one step from the zero state
            return self.step(self.initial_carry(()), obs)[1]
        scan = nn.scan(lambda module, carry, x: module.step(carry, x), variable_broadcast="params",
                       split_rngs={"params": False})
        return scan(self, self.initial_carry(obs.shape[1:obs.ndim - self.obs_dims]), obs)[1]


class Recurrence(NamedTuple):
    """What the rollout needs of a recurrent policy (`recurrence`), each a plain function.

    Attributes:
      initial_carry: `(batch_shape) -> state`, the zero state an episode starts from.
      step: `(params, state, obs [E, *obs_shape]) -> (state, out [E, K])`, one step of E episodes.
    """

    initial_carry: Callable[[tuple[int, ...]], Any]
    step: Callable[[Any, Any, jax.Array], tuple[Any, jax.Array]]


def is_recurrent(module: nn.Module) -> bool:
    """Whether `module` carries a state from step to step: it has `initial_carry` and `step` methods
    (`RecurrentPolicy`, or a custom module of the same shape)."""
    return callable(getattr(module, "initial_carry", None)) and callable(getattr(module, "step", None))


def recurrence(module: nn.Module) -> Recurrence | None:
    """The `Recurrence` of a recurrent module, None for a feed-forward one (`is_recurrent`)."""
    if not is_recurrent(module):
        return None

    def step(params, carry, obs):
        return module.apply({"params": params}, carry, obs.astype(jnp.float32), method="step")

    return Recurrence(lambda batch_shape: module.initial_carry(batch_shape), step)


# ---- legal-action masks
# The logit an illegal action gets: its probability exp(MASKED_LOGIT - max) is 0 in float32, and its term of the
# entropy, 0 * log 0, stays 0 (a finite logit, not -inf, whose 0 * -inf would be NaN).
MASKED_LOGIT = -1e9


def masked_logits(logits: jax.Array, legal: jax.Array) -> jax.Array:
    """logits [..., A] with the illegal actions' (legal [..., A] False) set to `MASKED_LOGIT`: sampling, greedy
    choice, log-probability and entropy then see only the legal actions, and no gradient reaches the others."""
    return jnp.where(legal, logits, MASKED_LOGIT)


class Masked(nn.Module):
    """A network on observations that end with a legal-action mask (`pgjax.algo.envs.legal_actions`).

    `__call__(obs [..., F + M]) -> out [..., K]`: `network` sees the features obs[..., :F] only; a policy's
    logits (`mask_outputs`) are masked (`masked_logits`); a value network's output is left as it is.

    Attributes:
      network: the module on the features [..., F] (built for an EnvSpec of obs_shape (F,)).
      mask_size: M, the mask's entries (the actions, or a MultiDiscrete's logits).
      mask_outputs: whether the outputs are logits to mask (a policy) or not (a value network).
    """

    network: nn.Module
    mask_size: int
    mask_outputs: bool = True

    def split(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """obs [..., F + M] -> (features [..., F], legal bool [..., M])."""
        cut = obs.shape[-1] - self.mask_size
        return obs[..., :cut], obs[..., cut:] > 0.5

    def masked(self, out: jax.Array, legal: jax.Array) -> jax.Array:
        return masked_logits(out, legal) if self.mask_outputs else out

    def __call__(self, obs: jax.Array) -> jax.Array:
        features, legal = self.split(obs)
        return self.masked(self.network(features), legal)


class MaskedRecurrent(Masked):
    """`Masked` around a recurrent network: also its `initial_carry` and `step` (`is_recurrent`)."""

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Any:
        return self.network.initial_carry(batch_shape)

    def step(self, carry: Any, obs: jax.Array) -> tuple[Any, jax.Array]:
        features, legal = self.split(obs)
        carry, out = self.network.step(carry, features)
        return carry, self.masked(out, legal)


# ---- action distributions
def log_prob(logits: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a|s): logits [..., A], integer actions [...] -> [...]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]


def entropy(logits: jax.Array) -> jax.Array:
    """Entropy of the categorical distribution in nats: logits [..., A] -> [...]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """Draw actions a ~ pi(.|s): logits [..., A] -> int32 [...].

    Inverse-CDF sampling: one uniform number per draw, a = #{k : CDF_k <= u}.
    Exact like `jax.random.categorical`'s Gumbel-max trick (`plain_sample`),
    which draws A numbers and takes two logarithms of each; the two give
    different samples from the same key (`pgjax.algo.config.FastPaths.inverse_cdf_sampling`).
    """
    cdf = jnp.cumsum(jax.nn.softmax(logits), axis=-1)
    u = jax.random.uniform(key, logits.shape[:-1] + (1,), dtype=cdf.dtype)
    return jnp.minimum(jnp.sum(cdf <= u * cdf[..., -1:], axis=-1), logits.shape[-1] - 1).astype(jnp.int32)


def plain_sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """`sample` by `jax.random.categorical` (the reference path): logits [..., A] -> int32 [...]."""
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def categorical_greedy(logits: jax.Array) -> jax.Array:
    """The most probable action (ties: the first): logits [..., A] -> int32 [...]."""
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


# Gaussian policies. The network's mean and log std live in normalised units, in
# which the action space's bounds are -1 and 1; `to_env` maps a sample there.
#
# "clip": u ~ N(mean, std) is clipped to [-1, 1] and stored. The stored action is
#   then distributed as a clipped Gaussian: a density inside the bounds and a
#   point mass at each bound (the Gaussian's tail beyond it). Its log-probability
#   is that mixture's: log N(a; mean, std) inside, log P(u <= -1) = log Phi((-1 -
#   mean) / std) at -1 and log P(u >= 1) at 1 ("clipped action policy gradient",
#   Fujita & Maeda 2018), which gives a lower-variance gradient than the
#   unclipped sample's density and is exactly the distribution of what was done.
# "tanh": the pre-squash sample u ~ N(mean, std) is stored and the environment
#   gets tanh(u); the log-density of tanh(u) is log N(u) - log(1 - tanh(u)^2).
# Either log-probability is of the action in the environment's units: the affine
# map from normalised units subtracts log(half range) per density dimension.
# The entropy (metrics and bonus) is the Gaussian's before clipping or squashing,
# in normalised units: sum(log std) + A/2 log(2 pi e).

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_split(out: jax.Array) -> tuple[jax.Array, jax.Array]:
    """out [..., 2A] -> (mean [..., A], log_std [..., A])."""
    a = out.shape[-1] // 2
    return out[..., :a], out[..., a:]


def gaussian_log_prob(
    out: jax.Array, action: jax.Array, squash: Squash, half_range: jax.Array | float = 1.0
) -> jax.Array:
    """log pi(a|s) of stored Gaussian actions: out [..., 2A], action [..., A] -> [...].

    `action` is what `gaussian_sample` stored (the clipped u, or the pre-squash u);
    the result is the log-probability of the action the environment received, in
    its units (`half_range` [A]: (high - low) / 2 of the action space).
    """
    mean, log_std = gaussian_split(out)
    inv_std = jnp.exp(-log_std)
    z = (action - mean) * inv_std
    density = -0.5 * z * z - log_std - _HALF_LOG_2PI - jnp.log(half_range)
    if squash == "tanh":
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        density = density - 2.0 * (math.log(2.0) - action - jax.nn.softplus(-2.0 * action))
        return density.sum(axis=-1)
    if squash == "clip":
        below = log_ndtr((-1.0 - mean) * inv_std)  # log P(u <= -1)
        above = log_ndtr((mean - 1.0) * inv_std)  # log P(u >= 1)
        per_dim = jnp.where(action <= -1.0, below, jnp.where(action >= 1.0, above, density))
        return per_dim.sum(axis=-1)
    raise ValueError(f"unknown squash {squash!r}")


def gaussian_entropy(out: jax.Array) -> jax.Array:
    """Entropy in nats of the Gaussian before clipping or squashing (normalised units): [..., 2A] -> [...]."""
    _, log_std = gaussian_split(out)
    return jnp.sum(log_std + 0.5 + _HALF_LOG_2PI, axis=-1)


def gaussian_sample(key: jax.Array, out: jax.Array, squash: Squash) -> jax.Array:
    """Draw a stored action [..., A]: clip(u, -1, 1) ("clip") or u itself ("tanh"), u ~ N(mean, std)."""
    mean, log_std = gaussian_split(out)
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.clip(u, -1.0, 1.0) if squash == "clip" else u


def gaussian_greedy(out: jax.Array, squash: Squash) -> jax.Array:
    """The stored action of the mean: clip(mean, -1, 1) or the mean itself."""
    mean, _ = gaussian_split(out)
    return jnp.clip(mean, -1.0, 1.0) if squash == "clip" else mean


class Distribution(NamedTuple):
    """One kind of action distribution; `out` is the network's output.

    Attributes:
      sample: (key, out [..., K]) -> stored action [..., *action_shape].
      log_prob: (out, stored action) -> [...], log pi(a|s) of what the environment received.
      entropy: out -> [...] nats.
      greedy: out -> the stored action of the most probable choice (argmax, or the mean).
      to_env: stored action -> the action the environment is given.
      action_shape: () for categorical, (A,) for Gaussian, (D,) for multi-categorical.
      action_dtype: int32 or float32.
    """

    sample: Callable[[jax.Array, jax.Array], jax.Array]
    log_prob: Callable[[jax.Array, jax.Array], jax.Array]
    entropy: Callable[[jax.Array], jax.Array]
    greedy: Callable[[jax.Array], jax.Array]
    to_env: Callable[[jax.Array], jax.Array]
    action_shape: tuple[int, ...]
    action_dtype: jnp.dtype


def categorical(inverse_cdf: bool = True) -> Distribution:
    """The categorical distribution over logits (Discrete action spaces).

    Args:
      inverse_cdf: sample by inverse CDF (`sample`), else by `jax.random.categorical` (`plain_sample`).
    """
    return Distribution(sample if inverse_cdf else plain_sample, log_prob, entropy, categorical_greedy,
                        lambda a: a, (), jnp.int32)


def gaussian(low: Sequence[float], high: Sequence[float], squash: Squash = "clip") -> Distribution:
    """A Gaussian over a Box action space [low, high] (each of shape [A]), clipped or tanh-squashed to it."""
    low, high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
    centre, half = (high + low) / 2, (high - low) / 2
    if squash not in ("clip", "tanh"):
        raise ValueError(f"unknown squash {squash!r}")
    squash_fn = (lambda u: u) if squash == "clip" else jnp.tanh
    return Distribution(
        sample=lambda key, out: gaussian_sample(key, out, squash),
        log_prob=lambda out, action: gaussian_log_prob(out, action, squash, half),
        entropy=gaussian_entropy,
        greedy=lambda out: gaussian_greedy(out, squash),
        to_env=lambda action: centre + half * squash_fn(action),
        action_shape=(int(low.shape[0]),),
        action_dtype=jnp.float32,
    )


def multi_categorical(nvec: Sequence[int], inverse_cdf: bool = True) -> Distribution:
    """Independent categoricals, one per entry of a MultiDiscrete action space of sizes `nvec` [D].

    `out` is the D logit vectors concatenated, [..., sum(nvec)]; the stored (and the
    environment's) action is int32 [..., D]. log_prob and entropy are the sums over
    the entries; greedy is each entry's argmax. Entry d samples with `fold_in(key, d)`.
    """
    nvec = tuple(int(n) for n in nvec)
    bounds = [sum(nvec[:d]) for d in range(len(nvec) + 1)]
    draw = sample if inverse_cdf else plain_sample

    def parts(out):
        return [out[..., bounds[d]:bounds[d + 1]] for d in range(len(nvec))]

    def multi_sample(key, out):
        return jnp.stack([draw(jax.random.fold_in(key, d), logits) for d, logits in enumerate(parts(out))], axis=-1)

    def multi_log_prob(out, action):
        return sum(log_prob(logits, action[..., d]) for d, logits in enumerate(parts(out)))

    def multi_entropy(out):
        return sum(entropy(logits) for logits in parts(out))

    def multi_greedy(out):
        return jnp.stack([categorical_greedy(logits) for logits in parts(out)], axis=-1)

    return Distribution(multi_sample, multi_log_prob, multi_entropy, multi_greedy, lambda a: a, (len(nvec),),
                        jnp.int32)


def make_distribution(spec: EnvSpec, squash: Squash = "clip", inverse_cdf: bool = True) -> Distribution:
    """The action distribution of `spec`'s action space: `gaussian(low, high, squash)` for Box actions
    (`StaticConfig.squash`: "clip" or "tanh"; another raises ValueError), `multi_categorical(nvec)` for
    MultiDiscrete ones, else `categorical()`; `inverse_cdf`: `FastPaths.inverse_cdf_sampling`."""
    if spec.action_kind == "continuous":
        return gaussian(spec.action_low, spec.action_high, squash)
    if spec.action_kind == "multi_discrete":
        return multi_categorical(spec.action_nvec, inverse_cdf)
    return categorical(inverse_cdf)
