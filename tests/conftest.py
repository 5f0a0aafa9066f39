"""Shared fixtures: small configurations whose compiled functions are reused across tests."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from pgjax.config import PRESETS, Config

jax.config.update("jax_enable_x64", False)


def small_config(**static) -> Config:
    """The default preset shrunk to compile and run in a second or two."""
    base = PRESETS["default"]
    fields = {"hidden": (16,), "episodes_per_update": 4, "num_updates": 4, **static}
    return Config(dataclasses.replace(base.static, **fields), base.hparams)


@pytest.fixture(scope="session")
def keys8():
    return jax.vmap(jax.random.key)(jnp.arange(8))
