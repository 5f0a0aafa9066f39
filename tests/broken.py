"""Factories that misbehave, for the one-line errors of `python -m pgjax.train` (`tests/test_train_robust.py`).

Named on the command line as `--env tests.broken:exiting_env` and so on (run from the repository root).
"""

from __future__ import annotations

import sys


def exiting_env():
    """An environment factory that ends the process (`sys.exit(3)`)."""
    sys.exit(3)


def interrupted_env():
    """An environment factory that raises KeyboardInterrupt."""
    raise KeyboardInterrupt


def failing_network(spec, static, num_outputs, gaussian):
    """A network factory that raises."""
    raise RuntimeError("no network today")


def exiting_network(spec, static, num_outputs, gaussian):
    """A network factory that ends the process."""
    sys.exit(4)


def not_a_module(spec, static, num_outputs, gaussian):
    """A network factory that returns something other than a Flax module."""
    return 42


def volume_env():
    """CartPole-v1 whose observation space claims a 4-D Box, a shape pgjax's networks do not take."""
    import gymnax
    from gymnax.environments import spaces

    env, _ = gymnax.make("CartPole-v1")

    class Volume(type(env)):
        def observation_space(self, params):
            return spaces.Box(-1.0, 1.0, (1, 1, 1, 4))

    return Volume()


_STEPS = [0]


def _count_step(_) -> None:
    _STEPS[0] += 1
    if _STEPS[0] > 300:
        raise ZeroDivisionError("the simulator lost its state")


def raising_env():
    """CartPole-v1 whose step, while training runs, raises in a host callback after 300 calls (an environment
    that fails mid-run: its error surfaces from the compiled program)."""
    import gymnax
    import jax

    env, _ = gymnax.make("CartPole-v1")

    class Raising(type(env)):
        def step_env(self, key, state, action, params):
            jax.debug.callback(_count_step, action)
            return super().step_env(key, state, action, params)

    return Raising()
