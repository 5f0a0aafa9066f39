"""The speed devices of the training path, each switched in this one place.

Every device computes the same function as the plain reference path
(`SpeedOptions.reference()`); they change only how XLA lays out and orders the
work, so float sums may differ in their order, and nothing else:

* `fold_runs`: `pgjax.algo.batching.fold_vmap` folds `jax.vmap` over runs into
  one explicit run axis, so that the rollout's `while_loop` stops when the
  batch's longest episode ends (off: a plain `jax.vmap`, whose batched loop
  predicate carries every buffer through a `select` per step).
* `blocked_gradient`: the losses' gradients (and the value network's values)
  go over blocks of runs and time slices up to each block's longest episode
  (`pgjax.algo.loss`; off: `jax.value_and_grad` of the loss over the whole
  [T, E] trajectory of each run).
* `feature_major_dense`: an MLP's dense layers may take the hand-written
  feature-major backward pass of `pgjax.algo.dense.dense_stack`, as
  `StaticConfig.feature_major_backward` decides (off: autodiff of the plain
  layers, whatever that setting says; `SpeedOptions.network`).
* `inverse_cdf_sampling`: categorical actions drawn by inverse-CDF sampling
  from one uniform number per draw (off: `jax.random.categorical`). Both draw
  from the same distribution, but not the same samples from one key; the
  default preset was tuned with it, so it stays although its gain was under 5%.
* `im2col_convolution`: the CNN's 3x3 convolutions are one matrix product
  over the 9 shifted copies of the input (`pgjax.algo.networks.TorchConv`; off:
  `lax.conv_general_dilated`, a grouped convolution once vmapped over runs).
* `run_major_buffers`: with `fold_runs`, the rollout writes image observations
  into run-major [R, T, E, ...] buffers (`pgjax.algo.rollout`; off:
  time-major buffers moved to run-major after the loop, as vectors always are).

The defaults are pgjax's training path; `experiments/speed_devices.py`
measures each device on and off, and tests/test_reference.py checks that the
defaults and `reference()` give the same loss, gradients and updates. A device
stays only while it gains at least 5% of the default preset's training time or
the default command's wall time, or where it applies only to some
environments, there (the docs' performance page gives the measurements).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import flax.linen as nn


@dataclasses.dataclass(frozen=True)
class SpeedOptions:
    """One boolean per speed device (hashable, static: each combination compiles its own program).

    Attributes: see the module docstring; True (the default) uses the device.
    """

    fold_runs: bool = True
    blocked_gradient: bool = True
    feature_major_dense: bool = True
    inverse_cdf_sampling: bool = True
    im2col_convolution: bool = True
    run_major_buffers: bool = True

    @classmethod
    def reference(cls) -> SpeedOptions:
        """Every device off: the plain reference path."""
        return cls(**{f.name: False for f in dataclasses.fields(cls)})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The devices' field names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def network(self, module: nn.Module) -> nn.Module:
        """`module` with the network-level devices that are off turned off (a clone; `module` if none is).

        `feature_major_dense` off sets a module's `feature_major_backward` to
        False, `im2col_convolution` off its `im2col` (`pgjax.algo.networks`);
        modules without those attributes are returned as they are.
        """
        changes = {}
        if not self.feature_major_dense and getattr(module, "feature_major_backward", False):
            changes["feature_major_backward"] = False
        if not self.im2col_convolution and getattr(module, "im2col", False):
            changes["im2col"] = False
        return module.clone(**changes) if changes else module


DEFAULT = SpeedOptions()
