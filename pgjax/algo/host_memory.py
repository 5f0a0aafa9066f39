"""Free memory, read without JAX: a device's own counters, and the host's (Linux's MemAvailable).

Imported by `pgjax.running.devices` before JAX is (the command line's `--help`
imports no JAX) and by `pgjax.algo.footprint`.
"""

from __future__ import annotations

import os


def device_memory_stats(device) -> dict | None:
    """A device's own memory counters (`Device.memory_stats()`: "bytes_limit", "bytes_in_use",
    "peak_bytes_in_use", ... in bytes), or None where it keeps none (a CPU device; some backends)."""
    stats = None if device.platform == "cpu" else device.memory_stats()
    return dict(stats) if stats else None


def host_available_bytes() -> int | None:
    """Memory this host can still give (Linux's MemAvailable), else its physical memory; None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
