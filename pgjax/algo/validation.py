"""Validating a configuration completely: its own checks and the names looked up in the registries.

`pgjax.algo.config` is data and imports no registry, so its `validate` methods check
what needs none. The registries check their own names beside them: a network's name
in `pgjax.algo.policy` (`check_network_name`, which never imports a
"package.module:factory"), the returns, baseline, advantage and reduction kinds in
`pgjax.algo.weights` (`validate_kinds`, and `validate_learned` for what a learned
baseline needs). This module, above both, composes them:

    validate_config(config)     # what training, sweeps, resuming and the command line call
    validate_static(static)     # the static half alone (a grid's points)

Each raises ValueError with the one-line reason the first failing check gives, in
this order: the network's name, sizes, kinds, combinations, then the numbers.
"""

from __future__ import annotations

from pgjax.algo.config import Config, StaticConfig
from pgjax.algo.imports import well_formed
from pgjax.algo.policy import check_network_name
from pgjax.algo.weights import check_beside_own_weighting, is_learned, validate_kinds, validate_learned


def validate_static(static: StaticConfig) -> None:
    """Check every static setting, the registered names too.

    Args:
      static: the settings to check.

    Raises:
      ValueError: one line naming the fields, if the settings cannot work (an
        unknown network names the registered ones; nothing is imported).
    """
    check_network_name(static.network)
    for name, flag in ((static.weighting, "--weighting"), (static.step_loss, "--step-loss")):
        if name != "" and not well_formed(name):
            raise ValueError(f"{flag} {name!r} is not of the form package.module:function")
    static.validate_sizes()
    validate_kinds(static)
    static.validate_combinations()
    validate_learned(static)
    if static.weighting:
        check_beside_own_weighting(static.baseline)


def validate_config(config: Config) -> None:
    """Check a whole configuration: `validate_static`, then `Hyperparams.validate`.

    Args:
      config: the configuration to check.

    Raises:
      ValueError: one line naming the fields, if the settings cannot work.
    """
    validate_static(config.static)
    config.hparams.validate()


def unused_settings(static: StaticConfig, continuous_actions: bool) -> dict[str, str]:
    """Settings that have no effect with these static settings, each with the reason.

    Args:
      static: the static settings.
      continuous_actions: whether the environment's actions are a Box (a Gaussian
        policy) rather than Discrete (categorical).

    Returns:
      {field name (of `StaticConfig` or `Hyperparams`): why it does not apply}.
    """
    unused = {}
    if not continuous_actions:
        for name in ("squash", "init_log_std"):
            unused[name] = "applies to Gaussian policies (Box actions) only"
    if static.network != "cnn":
        unused["conv"] = "applies to network 'cnn' only"
    if not is_learned(static.baseline):
        for name in ("advantage", "value_learning_rate", "value_scale"):
            unused[name] = "applies to the value baselines only (baseline 'value' or 'value_norm')"
    if static.advantage != "gae":
        unused["gae_lambda"] = "applies to advantage 'gae' only"
    if static.baseline != "constant":
        unused["baseline_constant"] = "applies to baseline 'constant' only"
    return unused
