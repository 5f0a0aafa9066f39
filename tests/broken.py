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
