"""The REINFORCE loss and its gradient over one run's episodes; the value baseline's loss likewise.

For one run the policy loss is

    L(theta) = sum_{t,e} c_t,e * ( -log pi_theta(a_t,e | s_t,e) * w_t,e - beta * H[pi_theta(. | s_t,e)] )

with per-step weights w (returns after the baseline, `pgjax.algo.weights`), reduction
coefficients c (zero on padding) and entropy coefficient beta; its gradient is the
policy-gradient estimate. A learned value baseline V_phi has its own loss

    L_V(phi) = sum_{t,e} k_t,e * (V_phi(s_t,e) - target_t,e)^2 / 2

with k = 1 / (valid steps) on valid steps (a mean over steps) and targets from
`pgjax.algo.weights.value_advantages`.

`make_policy_gradient`, `make_value_forward` and `make_value_gradient` build
one run's gradients (and values): `jax.value_and_grad` of these losses over the
run's whole [T, E] trajectory, the reference path. The fast path
(`pgjax.algo.fast.blocks`, `FastPaths.blocked_gradient`, the default) computes
the same sums over blocks of runs and time slices, and only over the slices
that hold any episode's step, with the same per-run interface.

A loss of your own replaces the bracket above step by step: `step_loss(log_prob,
entropy, weight, entropy_coef) -> [...]` (`StepLoss`; `make_train(config,
step_loss=fn)`, or `--step-loss package.module:function`); both paths take it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.algo.policy import Distribution, categorical
from pgjax.algo.rollout import ApplyFn

ValueFn = Callable[[Any, jax.Array], jax.Array]  # (params, obs [..., *obs_shape]) -> V [...]
# (log_prob, entropy, weight [...], entropy_coef []) -> per-step loss [...]
StepLoss = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def reinforce_loss(
    apply_fn: ApplyFn,
    params: Any,
    obs: jax.Array,
    action: jax.Array,
    weight: jax.Array,
    coef: jax.Array,
    valid: jax.Array,
    entropy_coef: jax.Array | float,
    entropy_bonus: bool = True,
    dist: Distribution | None = None,
    step_loss: StepLoss | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The loss above over any block of steps: obs [..., *obs_shape], action [..., *action_shape], weight,
    coef, valid [...] -> (loss [], the policy entropy summed over valid steps [], nats).

    `entropy_bonus` False leaves the bonus out, its gradient not computed; `dist`: the
    action distribution (default categorical); `step_loss`: a `StepLoss` of one's own
    (the total is sum(coef * step_loss)), None: REINFORCE's.
    """
    dist = dist or categorical()
    out = apply_fn(params, obs)
    step_entropy = dist.entropy(out)
    if step_loss is not None:
        per_step = step_loss(dist.log_prob(out, action), step_entropy, weight, entropy_coef)
    else:
        per_step = -dist.log_prob(out, action) * weight
        if entropy_bonus:
            per_step = per_step - entropy_coef * step_entropy
    return jnp.sum(coef * per_step), jnp.sum(jnp.where(valid, step_entropy, 0.0))


def value_loss(value_fn: ValueFn, params: Any, obs: jax.Array, target: jax.Array, coef: jax.Array) -> jax.Array:
    """sum coef * (V(obs) - target)^2 / 2 over any block of steps: obs [..., *obs_shape], target, coef [...]."""
    error = value_fn(params, obs) - target
    return jnp.sum(coef * 0.5 * error * error)


# (params, obs [T, E, *obs_shape], action [T, E, ...], weight, coef, valid [T, E], entropy_coef [])
#   -> (loss [], grads like params, mean entropy [])
PolicyGradientFn = Callable[..., tuple[jax.Array, Any, jax.Array]]


def make_policy_gradient(
    apply_fn: ApplyFn, dist: Distribution | None = None, entropy_bonus: bool | None = None,
    step_loss: StepLoss | None = None,
) -> PolicyGradientFn:
    """Build `policy_gradient(params, obs [T, E, ...], action [T, E, ...], weight, coef, valid [T, E],
    entropy_coef []) -> (loss, grads like params, mean entropy over valid steps)` of one run:
    `jax.value_and_grad(reinforce_loss)` over the whole trajectory (its arguments: `reinforce_loss`'s;
    `entropy_bonus` None or True keep the bonus)."""
    loss_and_grad = jax.value_and_grad(
        lambda p, *batch: reinforce_loss(apply_fn, p, *batch, entropy_bonus=entropy_bonus is not False, dist=dist,
                                        step_loss=step_loss),
        has_aux=True,
    )

    def policy_gradient(params, obs, action, weight, coef, valid, entropy_coef):
        (loss, entropy_sum), grads = loss_and_grad(params, obs, action, weight, coef, valid, entropy_coef)
        return loss, grads, entropy_sum / jnp.maximum(valid.sum(), 1)

    return policy_gradient


def make_value_forward(value_fn: ValueFn) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
    """Build `values(params, obs, valid) -> V [T, E]` of one run (0 past its episodes), in one pass."""
    return lambda params, obs, valid: jnp.where(valid, value_fn(params, obs), 0.0)


def make_value_gradient(value_fn: ValueFn) -> Callable[..., tuple[jax.Array, Any]]:
    """Build `value_gradient(params, obs, target, coef, valid) -> (loss, grads)` of `value_loss`, one run's:
    obs [T, E, *obs_shape], target/coef/valid [T, E]; autodiff over the whole trajectory."""
    loss_and_grad = jax.value_and_grad(partial(value_loss, value_fn))
    return lambda params, obs, target, coef, valid: loss_and_grad(params, obs, target, coef)
