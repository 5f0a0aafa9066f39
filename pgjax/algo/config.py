"""Training configuration: static (shape-changing) settings apart from vmappable numbers.

`StaticConfig` fixes the shapes and the program that XLA compiles: change one of
its fields and `make_train` compiles anew. `Hyperparams` holds plain numbers that
enter the computation as arrays, so one compiled `train` can be `jax.vmap`-ped
over a batch of them. A `Config` pairs the two; `pgjax.algo.presets` names the ones pgjax
ships. `FastPaths` holds the static switches of how an update is computed (which
fast path each piece takes, `pgjax.algo.pieces`), apart from what it computes.

This module is data: it imports nothing of pgjax, and neither JAX nor Flax (the command
line's `--help` reads these declarations before anything imports JAX); `Hyperparams`
becomes a JAX pytree once JAX is imported (`register_pytrees`). Its `validate` methods check what
needs no registry (sizes, numeric domains, float32, combinations of built-in kinds);
`pgjax.algo.validation.validate_config` adds the names looked up in the registries
of `pgjax.algo.policy` and `pgjax.algo.weights`, which import this module.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.util
import math
import os
import sys
import typing
from typing import Any, Literal

import numpy as np

# The built-in kinds of `pgjax.algo.weights`' registries (RETURNS, BASELINES, REDUCTIONS,
# ADVANTAGES); a kind registered there from Python is accepted by `pgjax.algo.validation` too.
Returns = Literal["episode", "reward_to_go"]
Baseline = Literal["none", "constant", "batch_mean", "episode_norm", "batch_norm", "value", "value_norm"]
Reduction = Literal["episode_mean", "episode_sum", "step_mean"]
Activation = Literal["relu", "tanh"]
Network = str  # a registered network ("mlp", "cnn", `pgjax.algo.policy.register_network`) or "package.module:factory"
Squash = Literal["clip", "tanh"]
Advantage = Literal["return", "gae"]
# The built-in recurrent networks (`pgjax.algo.policy.RecurrentPolicy`): what `StaticConfig.validate_combinations`
# refuses with gradient_stats without importing the registry (one's own recurrent network is refused when built).
RECURRENT_NETWORKS = ("gru", "lstm")


# Training computes every `Hyperparams` value in float32 (`Hyperparams.as_arrays`, `grid.group_runs`): a value
# must be a normal float32 number there, neither overflowing to inf nor falling to 0 or a subnormal.
FLOAT32 = np.finfo(np.float32)
FLOAT32_TINY, FLOAT32_MAX = float(FLOAT32.tiny), float(FLOAT32.max)  # Python floats: compared without a cast
# Fields that must be > 0 (the others may also be 0 or negative): their float32 message gives no "0 or".
POSITIVE_HYPERPARAMS = ("learning_rate", "max_grad_norm", "divergence_limit", "value_learning_rate", "value_scale")


def setting(default: Any, help: str, alias: str | None = None) -> Any:
    """A dataclass field that carries its command-line help (and short alias) in its metadata.

    The one declaration of a setting: `pgjax.options` derives the command line's
    flag (`--field-name`, plus `alias`), type, help and default from it.
    """
    return dataclasses.field(default=default, metadata={"help": help, **({"alias": alias} if alias else {})})


def setting_help(cls: type, name: str) -> str:
    """The command-line help of field `name` of a config dataclass (declared with `setting`)."""
    return {f.name: f for f in dataclasses.fields(cls)}[name].metadata["help"]


@dataclasses.dataclass(frozen=True)
class StaticConfig:
    """Settings that change array shapes or program structure (hashable; one compile each).

    The policy's kind follows the environment's action space (`pgjax.algo.envs`):
    categorical for Discrete actions, Gaussian for Box actions.

    Attributes:
      env: gymnax environment id, e.g. "CartPole-v1", a suite's task "SUITE/NAME" or "package.module:factory"
        (`pgjax.algo.envs.make_env`).
      env_kwargs: "key=value" arguments of a "package.module:factory" env (`pgjax.algo.envs`).
      max_episode_steps: episodes are cut off (truncated) after this many steps; 0: the env's own limit.
      network: "mlp" (observations flattened, then `hidden`), "cnn" (3x3
        convolutions with `conv` channels over an image observation, then
        `hidden`), "gru" or "lstm" (recurrent: `hidden`'s widths but the last are a
        dense torso, the last is the cell's; `pgjax.algo.policy.RecurrentPolicy`), another name registered with
        `pgjax.algo.policy.register_network`, or "package.module:factory" (a
        `pgjax.algo.policy.NetworkFactory`, imported when built).
      hidden: hidden layer widths of the policy (and value) network, e.g. (32,) or (64, 64).
      conv: channels of the CNN's convolutions, e.g. (16,); unused by the MLP.
      activation: hidden-layer nonlinearity.
      squash: how a Gaussian policy's actions meet the Box's bounds: "clip" or
        "tanh" (`pgjax.algo.policy`); unused with Discrete actions.
      episodes_per_update: E, complete episodes collected per run for each update.
      num_updates: U, policy updates per run; the training budget.
      returns: the return that weights log pi(a_t|s_t): "episode" is the
        episode's discounted total sum_t gamma^t r_t given to every step
        (tutorial 000), "reward_to_go" is G_t = sum_{t'>=t} gamma^(t'-t) r_t'
        (tutorial 001).
      baseline: what is done to the returns before weighting: "none";
        "constant" subtracts `Hyperparams.baseline_constant`; "batch_mean"
        subtracts the mean over all steps of the update's episodes;
        "episode_norm" standardises within each episode (tutorial 001);
        "batch_norm" standardises over all steps of the update's episodes;
        "value" subtracts a learned state value V(s) (a second network of the
        same shape, trained on the returns with its own Adam; needs
        returns "reward_to_go"); "value_norm" also standardises those
        advantages over all steps of the update's episodes.
      advantage: with a value baseline, "return" weights a step by G_t - V(s_t);
        "gae" by generalised advantage estimation with `Hyperparams.gae_lambda`
        (GAE(1) is G_t - V(s_t)). Either bootstraps a truncated episode's
        return with V of its last observation.
      reduction: how per-step losses become one number: "episode_mean" averages
        over each episode's steps, then over episodes (tutorial 000);
        "episode_sum" sums over each episode's steps, then averages over episodes
        (tutorial 001; the plain Monte-Carlo gradient of J); "step_mean"
        averages over every step of the update's episodes.
      weighting: "package.module:function", a step weighting of your own,
        `function(traj, hparams) -> weight [T, E]` (`pgjax.algo.weights.custom_weighting`):
        it replaces `returns` and `baseline`; "" (the default): those.
      step_loss: "package.module:function", a per-step loss of your own,
        `function(log_prob, entropy, weight, entropy_coef) -> loss [...]`
        (`pgjax.algo.loss.StepLoss`); "" (the default): REINFORCE's.
      gradient_stats: also record, per update, statistics of the policy-gradient estimator from the
        update's per-episode gradient estimates (`pgjax.algo.trainer.Metrics`' gradient_variance,
        gradient_snr, gradient_cosine); off: training and its outputs are as without the setting. Needs
        `episodes_per_update` >= 2 and a feed-forward network.
    """

    env: str = setting("CartPole-v1", 'gymnax environment id (listed above), a suite\'s task "SUITE/NAME" (jumanji, '
                       'brax, navix, xminigrid, craftax, pgx, kinetix, popgym-arcade) or "package.module:factory".')
    env_kwargs: tuple[str, ...] = setting((), 'Arguments of --env\'s suite or factory: "key=value ...", typed by its '
                                          'signature.')
    max_episode_steps: int = setting(0, "Cut episodes off after this many steps (0: the environment's own limit).")
    hidden: tuple[int, ...] = setting((32,), 'Hidden layer widths, "64,64" for two layers.')
    activation: Activation = setting("relu", "Hidden-layer nonlinearity.")
    episodes_per_update: int = setting(8, "Complete episodes collected per run for each update.")
    num_updates: int = setting(100, "Policy updates per run (the training budget).")
    returns: Returns = setting("episode", "Return weighting log pi(a_t|s_t): the episode's total or reward-to-go.")
    baseline: Baseline = setting("batch_norm", "What is done to the returns (value*: a learned V(s)).")
    reduction: Reduction = setting("step_mean", "How per-step losses become one number.")
    network: Network = setting("mlp", '"mlp", "cnn", "gru", "lstm" (recurrent: the last --hidden width is the '
                               'cell\'s), a registered network or "package.module:factory".')
    conv: tuple[int, ...] = setting((16,), 'Channels of the 3x3 convolutions, "16,32" for two (--network cnn).')
    squash: Squash = setting("clip", "Box actions: clip the Gaussian's sample to the bounds, or tanh-squash it.")
    advantage: Advantage = setting("return", "With a value baseline: G_t - V(s_t), or GAE with --gae-lambda.")
    weighting: str = setting("", "Your step weights, module:function.")
    step_loss: str = setting("", "Your per-step loss, module:function.")
    gradient_stats: bool = setting(False, "Also record per update the gradient estimator's variance, SNR and "
                                          "cosine to the last update's.")

    def validate(self) -> None:
        """Check what needs no registry: `validate_sizes`, then `validate_combinations`.

        The names of the network and of the returns, baseline, advantage and reduction
        kinds are looked up in registries this module does not import:
        `pgjax.algo.validation.validate_static` checks those too, and is what training calls.

        Raises:
          ValueError: one line naming the fields, if the settings cannot work.
        """
        self.validate_sizes()
        self.validate_combinations()

    def validate_sizes(self) -> None:
        """Check the widths, channels and counts: every one a positive integer (a block size may be None).

        Raises:
          ValueError: one line naming the field and its value.
        """
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive integers, got {self.hidden}")
        if self.network == "cnn" and (not self.conv or any(c < 1 for c in self.conv)):
            raise ValueError(f"conv channels must be positive integers, got {self.conv}")
        if self.episodes_per_update < 1:
            raise ValueError(f"episodes_per_update must be >= 1, got {self.episodes_per_update}")
        if self.num_updates < 1:
            raise ValueError(f"num_updates must be >= 1, got {self.num_updates}")
        if self.max_episode_steps < 0:
            raise ValueError(f"max_episode_steps must be >= 0 (0: the environment's own limit), got "
                             f"{self.max_episode_steps}")

    def validate_combinations(self) -> None:
        """Check the combinations of built-in kinds that cannot work (those that need no registry).

        Raises:
          ValueError: one line naming the settings and what works instead.
        """
        if self.returns == "episode" and self.baseline == "episode_norm":
            raise ValueError(
                "baseline 'episode_norm' with returns 'episode' gives every step weight 0 "
                "(the return is constant within an episode); use baseline 'batch_norm' or returns 'reward_to_go'"
            )
        if self.gradient_stats and self.episodes_per_update < 2:
            raise ValueError(f"gradient_stats needs episodes_per_update >= 2 (a variance over episodes), got "
                             f"{self.episodes_per_update}")
        if self.gradient_stats and self.network in RECURRENT_NETWORKS:
            raise ValueError(f"gradient_stats computes per-episode gradients of feed-forward networks only, not "
                             f"network '{self.network}'")


@dataclasses.dataclass(frozen=True)
class Hyperparams:
    """Numeric settings; each leaf may be a scalar or carry a leading batch axis for vmap.

    A JAX pytree whose leaves are its fields, in declaration order (registered
    with `jax.tree_util.register_dataclass` once JAX is imported, `register_pytrees`).

    Attributes:
      learning_rate: Adam step size.
      gamma: discount factor in [0, 1].
      baseline_constant: subtracted from the returns when baseline == "constant".
      entropy_coef: weight of the entropy bonus (0 disables it).
      max_grad_norm: gradients are clipped to this global norm (inf disables it).
      divergence_limit: a run diverges when its loss or parameters stop being
        finite or a parameter's magnitude exceeds this; it is then frozen and
        flagged (`pgjax.algo.trainer`). Adam moves a parameter by about the learning
        rate per update, so sane runs stay far below the default.
      value_learning_rate: Adam step size of the value network (value baselines only).
      gae_lambda: lambda of GAE in [0, 1] (advantage "gae" only).
      value_scale: the value network's output is multiplied by this (V(s) =
        value_scale * net(s)), so that it fits returns of that magnitude at unit
        scale (e.g. 100 for Pendulum-v1's returns of -100 to -1500).
      init_log_std: initial log standard deviation of a Gaussian policy, in
        normalised units (0: the standard deviation is half the action range).
    """

    learning_rate: float = setting(0.03, "Adam learning rate.", alias="--lr")
    gamma: float = setting(1.0, "Discount factor in [0, 1].")
    baseline_constant: float = setting(0.0, "Subtracted from the returns (--baseline constant).")
    entropy_coef: float = setting(0.0, "Weight of the entropy bonus.")
    max_grad_norm: float = setting(math.inf, "Clip gradients to this global norm (inf: no clipping).")
    divergence_limit: float = setting(1e3, "A parameter past this magnitude marks its run diverged (inf: never).")
    value_learning_rate: float = setting(1e-3, "Adam learning rate of the value network.", alias="--value-lr")
    gae_lambda: float = setting(0.95, "GAE's lambda in [0, 1] (--advantage gae).")
    value_scale: float = setting(1.0, "The value network's output is multiplied by this.")
    init_log_std: float = setting(0.0, "Initial log std of a Gaussian policy, in half action ranges.")

    def validate(self) -> None:
        """Raise ValueError with a one-line reason, naming the field, for values outside their domain.

        Every value must be a finite number except `max_grad_norm` and
        `divergence_limit`, whose infinity turns clipping and the divergence check off;
        and it must stay what it is in float32, as training computes it: a finite value
        at most float32's largest (about 3.4e38) in magnitude, a nonzero one at least its
        smallest normal number (about 1.2e-38).

        Raises:
          ValueError: one line naming the field, the value and the values that work.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if math.isnan(value) or (math.isinf(value) and f.name not in ("max_grad_norm", "divergence_limit")):
                raise ValueError(f"{f.name} must be a finite number, got {value}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if not self.entropy_coef >= 0:
            raise ValueError(f"entropy_coef must be >= 0, got {self.entropy_coef}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if not self.divergence_limit > 0:
            raise ValueError(f"divergence_limit must be > 0, got {self.divergence_limit}")
        if not self.value_learning_rate > 0:
            raise ValueError(f"value_learning_rate must be > 0, got {self.value_learning_rate}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        if not self.value_scale > 0:
            raise ValueError(f"value_scale must be > 0, got {self.value_scale}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if math.isinf(value) or value == 0 or FLOAT32_TINY <= abs(value) <= FLOAT32_MAX:
                continue
            if abs(value) > FLOAT32_MAX:
                becomes = "-inf" if value < 0 else "inf"
            else:
                becomes = "0" if np.float32(value) == 0 else "a subnormal number"
            works = f"between {FLOAT32_TINY:.2g} and {FLOAT32_MAX:.2g}"
            works = f"a value {works}" if f.name in POSITIVE_HYPERPARAMS else f"0 or a value of magnitude {works}"
            raise ValueError(f"{f.name} {value} becomes {becomes} in float32, as training computes it; "
                             f"give {works}")

    def replace(self, **changes: Any) -> Hyperparams:
        """A copy with `changes` (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def broadcast(self, num_runs: int) -> Hyperparams:
        """The same values as float32 arrays of shape [num_runs], one per run."""
        import jax.numpy as jnp

        return Hyperparams(**{
            f.name: jnp.full((num_runs,), getattr(self, f.name), jnp.float32) for f in dataclasses.fields(self)
        })

    def as_arrays(self) -> Hyperparams:
        """The same values as float32 arrays, ready to be traced or stacked."""
        import jax.numpy as jnp

        return Hyperparams(**{
            f.name: jnp.asarray(getattr(self, f.name), jnp.float32)
            for f in dataclasses.fields(self)
        })


def register_pytrees() -> None:
    """Register `Hyperparams` with JAX as a pytree of its fields, in declaration order; imports JAX. Idempotent."""
    import jax

    if not hasattr(Hyperparams, "_pgjax_pytree"):
        names = [f.name for f in dataclasses.fields(Hyperparams)]
        jax.tree_util.register_dataclass(Hyperparams, data_fields=names, meta_fields=[])
        Hyperparams._pgjax_pytree = True


class _RegisterAfterJax(importlib.abc.MetaPathFinder):
    """An import hook that runs `register_pytrees` right after `jax` is first imported, then leaves."""

    def find_spec(self, name, path=None, target=None):
        if name != "jax":
            return None
        sys.meta_path.remove(self)  # the other finders find jax; this hook runs once
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module
            spec.loader.exec_module = lambda module: (exec_module(module), register_pytrees())
        return spec


if "jax" in sys.modules:
    register_pytrees()
elif not any(isinstance(finder, _RegisterAfterJax) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterJax())


@dataclasses.dataclass(frozen=True)
class Config:
    """A complete training configuration."""

    static: StaticConfig = StaticConfig()
    hparams: Hyperparams = Hyperparams()

    def validate(self) -> None:
        """Check what needs no registry (`StaticConfig.validate`, `Hyperparams.validate`).

        `pgjax.algo.validation.validate_config` checks everything, the registered
        names too; training and the command line call that.

        Raises:
          ValueError: one line naming the fields, if the settings cannot work.
        """
        self.static.validate()
        self.hparams.validate()

    def to_dict(self) -> dict:
        """{"static": {field: value}, "hparams": {field: value}}; `from_dict` reverses it, also after JSON."""
        return {
            "static": dataclasses.asdict(self.static),
            "hparams": {f.name: getattr(self.hparams, f.name) for f in dataclasses.fields(self.hparams)},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        """The `Config` that `to_dict` gave `data`, also after a JSON round trip.

        JSON lists become the tuples the fields hold, and null numbers (how
        `pgjax.running.run_folder.files.jsonable` writes infinity) become inf. Fields left
        out take their defaults; the fast-path knobs of pgjax 0.2's static settings
        (`LEGACY_STATIC`, now `pgjax.algo.config.FastPaths`) are dropped. Raises
        ValueError naming fields it does not know.
        """
        static, hparams = data.get("static", {}), data.get("hparams", {})
        static = {name: value for name, value in static.items() if name not in LEGACY_STATIC}
        return cls(_from_fields(StaticConfig, static), _from_fields(Hyperparams, hparams))


# Static settings of pgjax 0.2 that were fast-path knobs (now `pgjax.algo.config.FastPaths.block_rows` and
# `.feature_major_dense`): run folders that hold them still load, without them.
LEGACY_STATIC = ("gradient_block_rows", "feature_major_backward")


def _from_fields(cls: type, values: dict) -> Any:
    """`cls(**values)` with JSON's lists turned into tuples and null numbers into inf."""
    types = typing.get_type_hints(cls)
    unknown = set(values) - set(types)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    converted = {}
    for name, value in values.items():
        if isinstance(value, list):
            value = tuple(value)
        elif value is None and types[name] is float:
            value = math.inf
        converted[name] = value
    return cls(**converted)


# The one answer to "is setting `name` static, and of what type?", derived from the field declarations above:
# the command line (`pgjax.options`), the grid (`pgjax.grid_settings`, `pgjax.running.grid`) and the run folder's
# readers (`pgjax.running.run_folder.loading`, `pgjax.results.exports`) ask it here.
STATIC_FIELDS = frozenset(f.name for f in dataclasses.fields(StaticConfig))
HYPERPARAMS_FIELDS = frozenset(f.name for f in dataclasses.fields(Hyperparams))


def is_static(name: str) -> bool:
    """Whether field `name` (e.g. "hidden") is `StaticConfig`'s (one compile per value); False for any other name."""
    return name in STATIC_FIELDS


def setting_type(name: str) -> tuple[type, Any]:
    """(the class that declares field `name`, its type with None taken out of an optional one).

    E.g. (StaticConfig, tuple[int, ...]) for "hidden", (Hyperparams, float) for "gamma".
    Raises KeyError where `name` is no setting.
    """
    cls = StaticConfig if is_static(name) else Hyperparams
    kind = typing.get_type_hints(cls)[name]
    if typing.get_origin(kind) in (typing.Union, type(int | None)):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    return cls, kind


def setting_kind(name: str) -> tuple[Any, bool]:
    """(the element type of one value of field `name`, whether the setting holds a tuple of them).

    E.g. (int, True) for the widths "hidden" and "conv", (float, False) for "gamma", (Literal[...], False)
    for "baseline". Raises KeyError where `name` is no setting.
    """
    kind = setting_type(name)[1]
    if typing.get_origin(kind) is tuple:
        return typing.get_args(kind)[0], True
    return kind, False


# How an update is computed: the fast paths' switches (`pgjax.algo.pieces` chooses by them).

SPEED_OFF_VARIABLE = "PGJAX_SPEED_OFF"
# The process fast paths (`pgjax.running.devices`): XLA CPU options and `gc.freeze` around the compiles.
PROCESS_FAST_PATHS = ("small_loops", "llvm_level", "gc_freeze")
SWITCHES = ("fold_runs", "blocked_gradient", "feature_major_dense", "inverse_cdf_sampling", "im2col_convolution",
            "run_major_buffers", "skip_auto_reset")


@dataclasses.dataclass(frozen=True)
class FastPaths:
    """One switch per fast path, and their settings (hashable, static: each combination compiles its own program).

    True (the default) takes the fast path, `feature_major_dense` None decides by
    the network; `pgjax.algo.pieces.choose_pieces` chooses by them.

    Every fast path computes the same function as the plain reference path
    (`FastPaths.reference()`); they change only how XLA lays out and orders the
    work, so float sums may differ in their order, and nothing else (inverse-CDF
    sampling draws from the same distribution, other samples):

    * `fold_runs`: `pgjax.algo.fast.folded.fold_vmap` folds `jax.vmap` over runs
      into one explicit run axis, so that the rollout's `while_loop` stops when the
      batch's longest episode ends (off: a plain `jax.vmap`, whose batched loop
      predicate carries every buffer through a `select` per step).
    * `blocked_gradient`: the losses' gradients (and the value network's values)
      go over blocks of runs and time slices up to each block's longest episode
      (`pgjax.algo.fast.blocks`; off: `pgjax.algo.loss`'s `jax.value_and_grad` of
      the loss over the whole [T, E] trajectory of each run). `block_rows` sets the
      steps a block takes (None: `pgjax.algo.fast.blocks.default_block_rows()`).
    * `feature_major_dense`: an MLP's dense layers take the hand-written
      feature-major backward pass of `pgjax.algo.fast.networks.dense_stack`. None
      (the default) decides by the first layer (`pgjax.algo.fast.networks`), True
      takes it for every MLP, False never (autodiff of the plain layers).
    * `inverse_cdf_sampling`: categorical actions drawn by inverse-CDF sampling
      from one uniform number per draw (`pgjax.algo.policy.sample`; off:
      `jax.random.categorical`). The default preset was tuned with it, so it stays
      although its gain was under 5%.
    * `im2col_convolution`: the CNN's 3x3 convolutions are one matrix product over
      the 9 shifted copies of the input (`pgjax.algo.fast.networks.Im2colConv`;
      off: `lax.conv_general_dilated`, a grouped convolution once vmapped over runs).
    * `run_major_buffers`: with `fold_runs`, the rollout writes image observations
      into run-major [R, T, E, ...] buffers (`pgjax.algo.fast.rollout`; off:
      time-major buffers moved to run-major after the loop, as vectors always are).
    * `skip_auto_reset`: the rollout steps an environment by `step_env` and
      `is_truncated`, without the reset that gymnax's `step` computes at every
      step and pgjax throws away, where that is the environment's own step less
      its reset (`pgjax.algo.envs.steps_directly`: gymnax's environments, not
      wrappers or classes with a `step` of their own; off: its `step`). The key
      given to `step_env` is the step's key itself, not its split as in `step`:
      other samples from the same distribution for environments that draw in
      their step.
    * `entropy_bonus` is a setting that travels with the switches, not a fast path:
      whether any run trained has a non-zero entropy coefficient. None decides at
      run time (a `lax.cond` in the blocked gradient, which compiles the gradient
      twice); True or False fixes it when tracing. False leaves the entropy term out
      of the loss, ignoring `Hyperparams.entropy_coef`: the same function only where
      every run's is 0, which is where the sweep sets it.

    The environment variable PGJAX_SPEED_OFF, a comma-separated list of names,
    turns fast paths off, read here only (`fast_paths_off`): the switches above
    (`FastPaths.from_environment()`, what `pgjax.algo.trainer.make_trainer` takes
    by default) and the process fast paths `PROCESS_FAST_PATHS`, which
    `pgjax.running.devices` applies (XLA options and the garbage collector around
    the compiles), e.g. `PGJAX_SPEED_OFF=small_loops,blocked_gradient python -m pgjax.train`.
    """

    fold_runs: bool = True
    blocked_gradient: bool = True
    feature_major_dense: bool | None = None
    inverse_cdf_sampling: bool = True
    im2col_convolution: bool = True
    run_major_buffers: bool = True
    skip_auto_reset: bool = True
    block_rows: int | None = None
    entropy_bonus: bool | None = None

    def __post_init__(self) -> None:
        if self.block_rows is not None and self.block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {self.block_rows}")

    @classmethod
    def reference(cls) -> FastPaths:
        """Every fast path off: the plain reference path."""
        return cls(**{name: False for name in SWITCHES})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The fast paths' switch names, in declaration order."""
        return SWITCHES

    @classmethod
    def from_environment(cls) -> FastPaths:
        """The defaults with the switches PGJAX_SPEED_OFF names turned off.

        Raises:
          ValueError: PGJAX_SPEED_OFF names an unknown fast path (`fast_paths_off`).
        """
        return cls(**{name: False for name in fast_paths_off() if name in SWITCHES})


def fast_paths_off(value: str | None = None) -> frozenset[str]:
    """The fast paths turned off: the names in PGJAX_SPEED_OFF (or in `value`).

    Args:
      value: a comma-separated list of names from `SWITCHES` and `PROCESS_FAST_PATHS`
        (spaces and empty items ignored); None reads the environment variable
        PGJAX_SPEED_OFF (unset: none off).

    Returns:
      The names listed.

    Raises:
      ValueError: a name that is no fast path (a one-line message that lists them).
    """
    value = os.environ.get(SPEED_OFF_VARIABLE, "") if value is None else value
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    known = (*PROCESS_FAST_PATHS, *SWITCHES)
    unknown = sorted(names - set(known))
    if unknown:
        raise ValueError(f"{SPEED_OFF_VARIABLE}: unknown fast path{'s' * (len(unknown) > 1)} "
                         f"{', '.join(map(repr, unknown))}; give a comma-separated list of {', '.join(known)}")
    return names
