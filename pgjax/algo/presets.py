"""The configurations pgjax ships: the two tutorials' algorithms and its recommendation per environment.

`PRESETS` names the starting points ("default", "seed-a", "seed-b");
`ENV_PRESETS` says what "default" means for each environment pgjax has tuned;
`preset_config(name, env)` combines the two.
"""

from __future__ import annotations

import dataclasses

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.suites import suite_preset

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

# pgjax's recommendation per environment: what preset "default" means for that `--env`.
# Budgets are sized for a 2-core CPU (experiments/envs_table.py measures them); the
# README's table gives the results. Environments not listed get PRESETS["default"].
def _minatar(
    env: str, num_updates: int, episodes_per_update: int = 16, learning_rate: float = 0.01, value: bool = False
) -> Config:
    """MinAtar (and Catch): reward-to-go standardised over the update (the CartPole default's
    baseline) or, with `value`, minus a learned V(s) with GAE(0.95) and then standardised; a
    flattened-observation MLP (on a CPU ~10x cheaper per step than the CNN option), an entropy
    bonus."""
    return Config(
        StaticConfig(
            env=env, hidden=(64,), episodes_per_update=episodes_per_update, num_updates=num_updates,
            returns="reward_to_go", baseline="value_norm" if value else "batch_norm",
            advantage="gae" if value else "return",
        ),
        Hyperparams(learning_rate=learning_rate, gamma=0.99, entropy_coef=0.01, value_learning_rate=3e-3),
    )


_ACROBOT = Config(
    StaticConfig(
        env="Acrobot-v1", hidden=(64,), activation="tanh", episodes_per_update=8, num_updates=150,
        returns="reward_to_go", baseline="value_norm", advantage="gae",
    ),
    Hyperparams(learning_rate=0.01, gamma=0.99, entropy_coef=0.01, value_learning_rate=3e-3, gae_lambda=0.95,
                value_scale=30.0),
)

ENV_PRESETS: dict[str, Config] = {
    "CartPole-v1": PRESETS["default"],
    # Gaussian policy, REINFORCE with a learned value baseline and GAE(0.95), advantages
    # standardised; 1000 updates x 4 episodes of 200 steps = 800k env steps per run.
    "Pendulum-v1": Config(
        StaticConfig(
            env="Pendulum-v1", hidden=(64, 64), activation="tanh", episodes_per_update=4, num_updates=1000,
            returns="reward_to_go", baseline="value_norm", advantage="gae", squash="clip",
        ),
        Hyperparams(learning_rate=1e-3, gamma=0.99, value_learning_rate=3e-3, gae_lambda=0.95, value_scale=100.0,
                    init_log_std=0.0),
    ),
    # The goal's reward comes after hundreds of steps: the undiscounted episode return,
    # standardised over the update (as CartPole's default), a wide initial Gaussian and an
    # entropy bonus (without it 21 of 32 runs settled on pushing at full force without
    # reaching the goal, return -99.9 or near it; with it 1 of 32 ended below 0).
    "MountainCarContinuous-v0": Config(
        StaticConfig(
            env="MountainCarContinuous-v0", hidden=(64, 64), activation="tanh", episodes_per_update=8,
            num_updates=300, returns="episode", baseline="batch_norm", squash="clip",
        ),
        Hyperparams(learning_rate=0.01, gamma=1.0, entropy_coef=0.01, init_log_std=0.5),
    ),
    "Acrobot-v1": _ACROBOT,
    # Acrobot's settings; a random policy never reaches MountainCar's goal, so every
    # return is -200 and REINFORCE gets no signal (see the README's table).
    "MountainCar-v0": Config(dataclasses.replace(_ACROBOT.static, env="MountainCar-v0", num_updates=100),
                             _ACROBOT.hparams),
    # lr 0.01 let 2 of 64 seeds collapse to a deterministic policy within 50 updates; 0.003 none of 16
    "Breakout-MinAtar": _minatar("Breakout-MinAtar", 800, learning_rate=0.003),
    # a value baseline with GAE: final return 1.0 against 0.8 for reward-to-go batch_norm (8 seeds)
    "Asterix-MinAtar": _minatar("Asterix-MinAtar", 400, value=True),
    "SpaceInvaders-MinAtar": _minatar("SpaceInvaders-MinAtar", 300),
    "Freeway-MinAtar": _minatar("Freeway-MinAtar", 40, episodes_per_update=4),  # episodes last 2500 steps
    # gymnax's Seaquest steps ~100x slower than the other MinAtar games here: a small budget
    "Seaquest-MinAtar": _minatar("Seaquest-MinAtar", 40, episodes_per_update=8),
    "Catch-bsuite": _minatar("Catch-bsuite", 300),
}


# The learning rate of "default" on an environment without a preset of its own: over the 13 unpreset gymnax
# environments, 16 seeds x 100 updates each, 0.01 gave a mean normalised score of 0.72 against CartPole's 0.03's
# 0.44 and 0.003's 0.19 (experiments/unpreset_defaults.py, experiments/results/unpreset_defaults.md).
UNPRESET_LEARNING_RATE = 0.01


def env_preset(env: str) -> Config | None:
    """What preset "default" means for `env` where pgjax recommends something for it: its `ENV_PRESETS` entry
    (a gymnax id, bare or as "gymnax/ID", the Config then naming `env` as given), or its suite adapter's
    (`pgjax.algo.suites.suite_preset`); None where there is neither."""
    own = ENV_PRESETS.get(env.removeprefix("gymnax/"))
    if own is not None:
        return own if own.static.env == env else Config(dataclasses.replace(own.static, env=env), own.hparams)
    return suite_preset(env)


def preset_config(name: str, env: str | None = None) -> Config:
    """The preset `name` for environment `env` (None: the preset's own environment).

    "default" is the environment's own preset (`env_preset`: `ENV_PRESETS`, or its suite's adapter's
    `PRESETS`) where it has one, and CartPole-v1's default otherwise, with `UNPRESET_LEARNING_RATE`; any other
    preset (the tutorials) keeps its settings and only changes the environment.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; choose from {', '.join(PRESETS)}")
    if name == "default" and env is not None and (recommended := env_preset(env)) is not None:
        return recommended
    config = PRESETS[name]
    if env is None:
        return config
    hparams = config.hparams
    if name == "default" and env != config.static.env:  # no preset of its own: the measured learning rate
        hparams = dataclasses.replace(hparams, learning_rate=UNPRESET_LEARNING_RATE)
    return Config(dataclasses.replace(config.static, env=env), hparams)
