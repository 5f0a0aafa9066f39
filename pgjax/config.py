"""Training configuration: static (shape-changing) settings apart from vmappable numbers.

`StaticConfig` fixes the shapes and the program that XLA compiles: change one of
its fields and `make_train` compiles anew. `Hyperparams` holds plain numbers that
enter the computation as arrays, so one compiled `train` can be `jax.vmap`-ped
over a batch of them. A `Config` pairs the two; `PRESETS` names the ones pgjax
ships.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax.numpy as jnp
from flax import struct

Returns = Literal["episode", "reward_to_go"]
Baseline = Literal["none", "constant", "batch_mean", "episode_norm", "batch_norm"]
Reduction = Literal["episode_mean", "episode_sum", "step_mean"]
Activation = Literal["relu", "tanh"]


@dataclasses.dataclass(frozen=True)
class StaticConfig:
    """Settings that change array shapes or program structure (hashable; one compile each).

    Attributes:
      env: gymnax environment id, e.g. "CartPole-v1"; discrete action spaces only.
      hidden: hidden layer widths of the policy MLP, e.g. (32,) or (64, 64).
      activation: hidden-layer nonlinearity.
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
        "batch_norm" standardises over all steps of the update's episodes.
      reduction: how per-step losses become one number: "episode_mean" averages
        over each episode's steps, then over episodes (tutorial 000);
        "episode_sum" sums over each episode's steps, then averages over episodes
        (tutorial 001; the plain Monte-Carlo gradient of J); "step_mean"
        averages over every step of the update's episodes.
      gradient_block_rows: steps (of one or more runs) the loss gradient takes
        at once; None picks `pgjax.loss.default_block_rows()`. A speed knob that
        does not change the estimator (only the order of float sums).
    """

    env: str = "CartPole-v1"
    hidden: tuple[int, ...] = (32,)
    activation: Activation = "relu"
    episodes_per_update: int = 8
    num_updates: int = 100
    returns: Returns = "episode"
    baseline: Baseline = "batch_norm"
    reduction: Reduction = "step_mean"
    gradient_block_rows: int | None = None

    def validate(self) -> None:
        """Raise ValueError with a one-line reason if the settings cannot work."""
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive integers, got {self.hidden}")
        if self.episodes_per_update < 1:
            raise ValueError(f"episodes_per_update must be >= 1, got {self.episodes_per_update}")
        if self.num_updates < 1:
            raise ValueError(f"num_updates must be >= 1, got {self.num_updates}")
        if self.gradient_block_rows is not None and self.gradient_block_rows < 1:
            raise ValueError(f"gradient_block_rows must be >= 1, got {self.gradient_block_rows}")
        if self.returns == "episode" and self.baseline == "episode_norm":
            raise ValueError(
                "baseline 'episode_norm' with returns 'episode' gives every step weight 0 "
                "(the return is constant within an episode); use 'batch_norm' or 'reward_to_go'"
            )


@struct.dataclass
class Hyperparams:
    """Numeric settings; each leaf may be a scalar or carry a leading batch axis for vmap.

    Attributes:
      learning_rate: Adam step size.
      gamma: discount factor in [0, 1].
      baseline_constant: subtracted from the returns when baseline == "constant".
      entropy_coef: weight of the entropy bonus (0 disables it).
      max_grad_norm: gradients are clipped to this global norm (inf disables it).
      divergence_limit: a run diverges when its loss or parameters stop being
        finite or a parameter's magnitude exceeds this; it is then frozen and
        flagged (`pgjax.trainer`). Adam moves a parameter by about the learning
        rate per update, so sane runs stay far below the default.
    """

    learning_rate: float = 0.03
    gamma: float = 1.0
    baseline_constant: float = 0.0
    entropy_coef: float = 0.0
    max_grad_norm: float = math.inf
    divergence_limit: float = 1e3

    def validate(self) -> None:
        """Raise ValueError with a one-line reason for values outside their domain."""
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if not self.entropy_coef >= 0:
            raise ValueError(f"entropy coefficient must be >= 0, got {self.entropy_coef}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if not self.divergence_limit > 0:
            raise ValueError(f"divergence_limit must be > 0, got {self.divergence_limit}")

    def broadcast(self, num_runs: int) -> Hyperparams:
        """The same values as float32 arrays of shape [num_runs], one per run."""
        return Hyperparams(**{
            f.name: jnp.full((num_runs,), getattr(self, f.name), jnp.float32) for f in dataclasses.fields(self)
        })

    def as_arrays(self) -> Hyperparams:
        """The same values as float32 arrays, ready to be traced or stacked."""
        return Hyperparams(**{
            f.name: jnp.asarray(getattr(self, f.name), jnp.float32)
            for f in dataclasses.fields(self)
        })


@dataclasses.dataclass(frozen=True)
class Config:
    """A complete training configuration."""

    static: StaticConfig = StaticConfig()
    hparams: Hyperparams = Hyperparams()

    def validate(self) -> None:
        self.static.validate()
        self.hparams.validate()

    def to_dict(self) -> dict:
        return {
            "static": dataclasses.asdict(self.static),
            "hparams": {f.name: getattr(self.hparams, f.name) for f in dataclasses.fields(self.hparams)},
        }


PRESETS: dict[str, Config] = {
    # Tutorial 000, "Policy Gradient - a quick introduction": 4-32-2 MLP, Adam 0.01,
    # one episode per update, loss = -mean_t(log pi(a_t|s_t)) * (sum_t r_t - 15).
    "seed-a": Config(
        StaticConfig(
            hidden=(32,), episodes_per_update=1, num_updates=5000,
            returns="episode", baseline="constant", reduction="episode_mean",
        ),
        Hyperparams(learning_rate=0.01, gamma=1.0, baseline_constant=15.0),
    ),
    # Tutorial 001, "Deriving policy gradients and implementing REINFORCE": 4-128-2 MLP,
    # Adam 3e-4, gamma 0.9, reward-to-go standardised per episode (torch's std, ddof=1),
    # loss = sum_t -log pi(a_t|s_t) * G_t, one episode per update.
    "seed-b": Config(
        StaticConfig(
            hidden=(128,), episodes_per_update=1, num_updates=5000,
            returns="reward_to_go", baseline="episode_norm", reduction="episode_sum",
        ),
        Hyperparams(learning_rate=3e-4, gamma=0.9),
    ),
    # pgjax's recommendation for CartPole-v1; the README gives the measurements behind it.
    "default": Config(StaticConfig(), Hyperparams()),
}
