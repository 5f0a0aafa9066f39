"""Shared fixtures: small configurations whose compiled functions are reused across tests."""

from __future__ import annotations

import dataclasses
import os
import tempfile

from pgjax.running.devices import configure_cpu

# Two CPU devices, so that spreading runs over devices is exercised, and the other XLA options
# of pgjax's entry points (`configure_cpu`), before JAX starts.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
configure_cpu()
# The command line's compile cache goes to a folder of this test session, not the user's.
os.environ["PGJAX_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="pgjax-test-xla-cache-")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

from pgjax.algo.config import Config  # noqa: E402
from pgjax.algo.presets import PRESETS  # noqa: E402


def small_config(**static) -> Config:
    """The default preset shrunk to compile and run in a second or two."""
    base = PRESETS["default"]
    fields = {"hidden": (16,), "episodes_per_update": 4, "num_updates": 4, **static}
    return Config(dataclasses.replace(base.static, **fields), base.hparams)


@pytest.fixture(scope="session")
def keys8():
    return jax.vmap(jax.random.key)(jnp.arange(8))


class StopAt:
    """A stop request (`pgjax.commands.process.StopRequest`'s interface) that comes at the `at`-th poll (and stays)."""

    signal = None

    def __init__(self, at: int):
        self.at, self.polls = at, 0

    def __call__(self) -> bool:
        self.polls += 1
        return self.polls >= self.at


@pytest.fixture
def write_probes_refused(monkeypatch):
    """The probe file that checks a folder for an output can be written (`.pgjax-write-test-<pid>`,
    `pgjax.commands.outputs.check_output_file`) cannot be made: a folder that is not writable, even for root,
    whom chmod does not stop."""
    from pathlib import Path

    real = Path.write_text

    def read_only(self, *args, **kwargs):
        if self.name.startswith(".pgjax-write-test"):
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)
