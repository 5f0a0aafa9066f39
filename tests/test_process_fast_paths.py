"""The fast paths' switch (PGJAX_SPEED_OFF): parsing, and each process fast path off."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgjax.algo.config import PROCESS_FAST_PATHS, FastPaths
from pgjax.running import devices
from pgjax.running.devices import process_fast_path_on, process_speeds_off

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=REPO)


def test_the_switch_lists_fast_paths_by_name_and_rejects_unknown_names(monkeypatch):
    assert set(PROCESS_FAST_PATHS) == {"small_loops", "llvm_level", "gc_freeze"}
    assert process_speeds_off("") == frozenset()
    assert process_speeds_off(" small_loops, gc_freeze ,") == {"small_loops", "gc_freeze"}
    with pytest.raises(ValueError, match=r"unknown fast paths 'fast', 'small_loop'; .*small_loops, llvm_level"):
        process_speeds_off("small_loop,fast")
    monkeypatch.delenv("PGJAX_SPEED_OFF", raising=False)
    assert all(process_fast_path_on(name) for name in PROCESS_FAST_PATHS)
    assert FastPaths.from_environment() == FastPaths()
    monkeypatch.setenv("PGJAX_SPEED_OFF", "llvm_level")
    assert [process_fast_path_on(name) for name in PROCESS_FAST_PATHS] == [True, False, True]
    with pytest.raises(ValueError, match="not a process fast path"):
        process_fast_path_on("fold_runs")
    monkeypatch.setenv("PGJAX_SPEED_OFF", "exit")
    with pytest.raises(ValueError, match="PGJAX_SPEED_OFF: unknown fast path 'exit'"):
        process_fast_path_on("gc_freeze")


def test_the_same_switch_turns_the_training_paths_fast_paths_off(monkeypatch):
    """PGJAX_SPEED_OFF, read in `pgjax.algo.pieces` only, names process and training-path fast paths alike."""
    monkeypatch.setenv("PGJAX_SPEED_OFF", "blocked_gradient,gc_freeze")
    assert FastPaths.from_environment() == FastPaths(blocked_gradient=False)
    assert process_speeds_off() == {"gc_freeze"}


def test_an_unknown_name_stops_a_command_with_one_line_before_anything_is_written(tmp_path):
    environ = {**os.environ, "PYTHONPATH": str(REPO), "PGJAX_SPEED_OFF": "small_loops,turbo"}
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "pgjax.train", "--num-seeds", "1", "--out", str(out)],
                          capture_output=True, text=True, env=environ, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: PGJAX_SPEED_OFF: unknown fast path 'turbo'")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.skipif(devices._accelerator_installed(), reason="the CPU-only XLA options are left out anyway")
def test_configure_cpu_leaves_out_the_flags_of_fast_paths_switched_off():
    code = (
        "import os\n"
        "from pgjax.running.devices import configure_cpu\n"
        "for off in ['', 'small_loops', 'llvm_level', 'llvm_level,small_loops,gc_freeze']:\n"
        "    os.environ['XLA_FLAGS'] = ''\n"
        "    os.environ['PGJAX_SPEED_OFF'] = off\n"
        "    print(configure_cpu(2))\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    added = [ast.literal_eval(line) for line in done.stdout.strip().splitlines()]
    devices_flag = "--xla_force_host_platform_device_count=2"
    llvm_flag = "--xla_backend_optimization_level=1"
    small_loops_flag = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=65536"
    assert added == [
        [devices_flag, llvm_flag, small_loops_flag],
        [devices_flag, llvm_flag],
        [devices_flag, small_loops_flag],
        [devices_flag],
    ]


@pytest.mark.parametrize("off", ["", "gc_freeze"])
def test_run_command_freezes_the_imports_objects_unless_gc_freeze_is_off(off):
    # what pgjax froze, not the count itself: CPython 3.12 starts with objects in the permanent
    # generation (gc.get_freeze_count() is 375 in 3.12.1 before any import; 0 in 3.11 and 3.13)
    code = (
        "import gc\n"
        "from pgjax.commands.shared import run_command\n"
        "before = gc.get_freeze_count()\n"
        "run_command(lambda: print('frozen', gc.get_freeze_count() > before) or 0)\n"
    )
    done = _python(code, PGJAX_SPEED_OFF=off)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"frozen {off != 'gc_freeze'}"


def test_the_instruction_set_cap_is_one_xla_flag_and_a_wrong_name_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PGJAX_CPU_MAX_ISA", "avx2")
    assert devices.cpu_max_isa() == "AVX2"
    assert "--xla_cpu_max_isa=AVX2" in devices.backend_choices("cpu", cpu_devices=2).xla_flags
    assert not devices.backend_choices("gpu").xla_flags  # an accelerator's code is its own
    monkeypatch.delenv("PGJAX_CPU_MAX_ISA")
    assert not any("max_isa" in f for f in devices.backend_choices("cpu", cpu_devices=2).xla_flags)
    assert devices.cpu_isa() in (*devices.CPU_ISAS, "unknown")
    environ = {**os.environ, "PYTHONPATH": str(REPO), "PGJAX_CPU_MAX_ISA": "AVX9"}
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "pgjax.train", "--num-seeds", "1", "--out", str(out)],
                          capture_output=True, text=True, env=environ, cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: PGJAX_CPU_MAX_ISA=AVX9 is not an instruction set XLA knows")
    assert not out.exists()
