"""pgjax's choices by backend, forced to an accelerator's on this CPU, and the accelerator ladder's command.

`experiments/accelerator/run.sh --small` runs here in full (every step, with tiny
sizes), so that the command prepared for a lent GPU cannot rot.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from pgjax.algo.fast import blocks as loss
from pgjax.algo.presets import PRESETS
from pgjax.commands import bench
from pgjax.results import throughput
from pgjax.running import devices, footprint, grid, memory, sweep

REPO = Path(__file__).resolve().parents[1]
ACCELERATOR = REPO / "experiments" / "accelerator"


class _Device:
    """A stand-in for a `jax.Device` of another platform, with its own memory counters."""

    process_index = 0

    def __init__(self, platform: str = "gpu", limit: int = 2**34, in_use: int = 0, stats: bool = True):
        self.platform = platform
        self.stats = {"bytes_limit": limit, "bytes_in_use": in_use, "peak_bytes_in_use": in_use} if stats else None

    def memory_stats(self):
        return self.stats


def _python(code: str, **environ: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **environ}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_the_choices_differ_by_backend_in_one_place(monkeypatch):
    monkeypatch.delenv("PGJAX_SPEED_OFF", raising=False)
    cpu = devices.backend_choices("cpu", cpu_devices=3)
    assert cpu.xla_flags == ("--xla_force_host_platform_device_count=3", "--xla_backend_optimization_level=1",
                             "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=65536")
    assert (cpu.runs_per_device, cpu.gradient_block_rows) == (64, 1024)
    for platform in ("gpu", "tpu"):
        choices = devices.backend_choices(platform)
        assert (choices.xla_flags, choices.runs_per_device, choices.gradient_block_rows) == ((), None, 1 << 20)
        assert choices.as_dict() == {"platform": platform, "xla_flags": [], "runs_per_device": None,
                                     "gradient_block_rows": 1 << 20}
    assert loss.default_block_rows() == 1024  # this process's backend: the CPU
    assert devices.expected_platform() == "cpu"


def test_the_runs_cap_is_the_cpus_alone():
    assert memory.default_max_parallel(jax.devices()) == 64 * len(jax.devices())
    assert memory.default_max_parallel([_Device(), _Device()]) is None
    assert memory.default_max_parallel([_Device("cpu"), _Device("gpu")]) is None


def test_an_accelerators_plan_reads_its_own_free_memory_and_has_no_cap():
    groups = grid.compile_groups(grid.expand_grid(PRESETS["default"]))
    static = PRESETS["default"].static
    per_run = memory.run_bytes(static, sweep.segment_length(static.num_updates))
    per_device = memory.device_bytes(static, loss.default_block_rows())
    free = int((1000 * per_run + per_device) / footprint.USABLE_FRACTION)  # room for 1000 runs on one device
    accelerator = _Device(limit=free + 12345, in_use=12345)
    assert memory.available_bytes([accelerator]) == free
    chunks, (estimate,) = sweep.plan_chunks(groups, 4096, [accelerator], max_parallel=None)
    assert estimate["chunk_size"] == 1000 and [c.positions.size for c in chunks] == [1000] * 4 + [96]
    chunks, _ = sweep.plan_chunks(groups, 512, [accelerator], max_parallel=None)
    assert [c.positions.size for c in chunks] == [512]  # not 64 per device, as on a CPU


def test_an_accelerator_without_memory_counters_falls_back_to_the_hosts_memory(monkeypatch):
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 777)
    assert memory.available_bytes([_Device(stats=False), _Device(stats=False)]) == 777


@pytest.mark.parametrize("platforms, expected", [("cuda", "gpu"), ("tpu", "tpu"), ("cpu", "cpu")])
def test_no_cpu_flag_is_set_where_the_process_will_use_an_accelerator(platforms, expected):
    code = (
        "import sys\n"
        "from pgjax.running.devices import configure_cpu, expected_platform\n"
        "print(expected_platform(), configure_cpu(2))\n"
        "assert 'jax' not in sys.modules\n"  # decided without starting (or importing) JAX
    )
    done = _python(code, JAX_PLATFORMS=platforms, XLA_FLAGS="", PGJAX_SPEED_OFF="")
    assert done.returncode == 0, done.stderr
    platform, added = done.stdout.strip().split(" ", 1)
    assert platform == expected
    assert (added == "[]") == (expected != "cpu"), added


def test_the_compile_cache_is_platform_independent(tmp_path, monkeypatch):
    updates = {}
    monkeypatch.setattr(jax.config, "update", lambda name, value: updates.__setitem__(name, value))
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert devices.use_compile_cache(tmp_path / "cache") == tmp_path / "cache"
    assert updates["jax_compilation_cache_dir"] == str(tmp_path / "cache")


# The benchmark's ladder: it stops climbing where memory would not allow or a rung fails.

def _fake_row(config, spec, num_runs, env_steps):
    measured = {"compile_seconds": 1.0, "run_seconds": 1.0, "devices": 1, "memory_bytes": None,
                "steps_per_second": 2.0, "useful_env_steps": 2, "computed_env_steps": 4}
    return {"runs": num_runs, "parallel_envs": num_runs * 8, "env_limit": {**measured, "steps_per_second": 4.0},
            "training": {**measured, "solved": num_runs}, "rollout": measured, "training_fraction_of_env_limit": 0.5,
            "rollout_fraction_of_env_limit": 0.5, "peak_rss_bytes": 1, "device_memory": None}


@pytest.mark.parametrize("failure", ["memory", "error"])
def test_the_ladder_stops_climbing_and_keeps_the_rungs_it_measured(failure, tmp_path, monkeypatch, capsys):
    def measure(config, spec, num_runs, env_steps, paths=None):
        if failure == "error" and num_runs == 64:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1 bytes.\nmore")
        return _fake_row(config, spec, num_runs, env_steps)

    monkeypatch.setattr(throughput, "measure_rung", measure)
    if failure == "memory":
        monkeypatch.setattr(memory, "available_bytes", lambda devices: 10**6 * 2 ** 20)  # about 1 TB free
    out = tmp_path / "bench.json"
    argv = ["--runs", "1", "64", "2000000", "--compile-updates", "1", "--out", str(out)]
    monkeypatch.setattr(throughput, "compile_seconds", lambda config, runs, updates, paths=None: 3.0)
    assert bench.main(argv) == 0
    written = json.loads(out.read_text())
    assert written["complete"] is True
    if failure == "memory":  # two million runs would need more than half a terabyte
        assert [r["runs"] for r in written["ladder"]] == [1, 64]
        assert written["stopped"]["runs"] == 2000000 and "half of the" in written["stopped"]["reason"]
    else:
        assert [r["runs"] for r in written["ladder"]] == [1]
        assert written["stopped"] == {"runs": 64, "reason": "RuntimeError: RESOURCE_EXHAUSTED: Out of memory "
                                                            "while trying to allocate 1 bytes."}
    assert written["compile_vs_updates"][0]["compile_seconds"] == 3.0
    assert written["backend_choices"]["platform"] == "cpu" and written["versions"]["pgjax"]
    assert "stopped climbing" in capsys.readouterr().out


def test_rung_fits_reads_the_devices_free_memory(monkeypatch):
    config = PRESETS["default"]
    monkeypatch.setattr(memory, "available_bytes", lambda devices: None)
    assert throughput.rung_fits(config, 10**9) is None  # no limit known
    per_run = memory.run_bytes(config.static, config.static.num_updates)
    monkeypatch.setattr(memory, "available_bytes", lambda devices: int(2.5 * 64 * per_run * len(devices)))
    assert throughput.rung_fits(config, 64) is None
    assert "holds" in throughput.rung_fits(config, 4096)


# The ladder's command (experiments/accelerator).

def _ladder():
    spec = importlib.util.spec_from_file_location("accelerator_ladder", ACCELERATOR / "ladder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_step_past_its_limit_is_killed_and_its_output_kept(tmp_path):
    log = tmp_path / "steps.log"
    code = "import time; print('started', flush=True); time.sleep(60)"
    result = _ladder().run_step([sys.executable, "-c", code], 2, log)
    assert result["timed_out"] and result["returncode"] is None and result["seconds"] < 30
    assert "started" in result["output_tail"] and "started" in log.read_text()


def test_an_unknown_step_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _ladder().main([str(tmp_path / "out"), "--steps", "bench,turbo"])
    assert exit_.value.code == 2 and "unknown step turbo" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_machine_whose_accelerator_did_not_start_stops_after_describe(tmp_path, monkeypatch):
    ladder = _ladder()
    commands = []

    def fake_step(command, timeout, log, env=None):  # describe found only a CPU
        commands.append(command)
        Path(command[-1]).write_text(json.dumps({"platform": "cpu"}))
        return {"returncode": 0, "timed_out": False, "seconds": 1.0, "output_tail": ""}

    monkeypatch.setattr(ladder, "run_step", fake_step)
    out = tmp_path / "out"
    assert ladder.main([str(out), "--work", str(tmp_path / "work"), "--require-platform", "gpu"]) == 1
    record = json.loads((out / "accelerator.json").read_text())
    assert [s["name"] for s in record["steps"]] == ["describe"] and len(commands) == 1
    assert record["stopped"].startswith("JAX's platform is cpu, not gpu")


def test_the_full_plan_has_the_issues_sizes():
    steps = {s["name"]: s for s in _ladder().plan(small=False)}
    assert list(steps) == ["describe", "train", "train_large", "bench", "grid", "search_plan", "search", "seed_b",
                           "train_cached"]
    assert steps["bench"]["args"][:9] == ["-m", "pgjax.bench", "--runs", "1", "64", "1024", "4096", "16384", "65536"]
    assert steps["train"]["args"] == ["-m", "pgjax.train", "--num-seeds", "1024"]
    assert steps["train_large"]["args"] == ["-m", "pgjax.train", "--num-seeds", "4096"]
    assert steps["grid"]["args"][2:] == ["--lr", "0.01", "0.03", "0.05", "--num-seeds", "1024"]
    assert steps["seed_b"]["args"][2:] == ["--preset", "seed-b", "--num-seeds", "4096", "--num-episodes", "2000"]
    assert steps["search"]["args"][2:] == ["--lr", "1e-4:1e-1:log", "--entropy-coef", "0:0.02", "--num-samples",
                                           "10000", "--num-seeds", "16", "--halving", "3"]
    assert steps["search_plan"]["args"] == [*steps["search"]["args"], "--plan-only"]


def test_run_sh_small_writes_every_steps_results(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "PYTHON": sys.executable, "PGJAX_WHEELS": str(tmp_path / "no-wheels")}
    env.pop("PYTHONPATH", None)  # run.sh puts this checkout on it
    done = subprocess.run(["bash", str(ACCELERATOR / "run.sh"), "--small", str(out), "--work", str(work)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("install: skipped, no wheels in ")
    assert sorted(p.name for p in out.iterdir()) == ["accelerator.json", "bench.json", "steps.log"]
    record = json.loads((out / "accelerator.json").read_text())
    assert record["complete"] and record["small"]
    steps = {s["name"]: s for s in record["steps"]}
    assert list(steps) == ["describe", "train", "train_large", "bench", "grid", "search_plan", "search", "seed_b",
                           "train_cached"]
    assert all(s["returncode"] == 0 and not s["timed_out"] for s in steps.values())
    machine = record["machine"]
    assert machine["platform"] == "cpu" and machine["backend_choices"]["runs_per_device"] == 64
    assert machine["imported_from"]["pgjax"] == str(REPO / "pgjax")
    assert {"python", "pgjax", "jax", "jaxlib", "flax", "optax", "gymnax"} <= set(machine["versions"])
    assert "--xla_backend_optimization_level=1" in machine["xla_flags"]
    ladder = steps["bench"]["result"]
    assert ladder["complete"] and [r["runs"] for r in ladder["ladder"]] == [1, 8] and ladder["stopped"] is None
    assert ladder == json.loads((out / "bench.json").read_text())
    for name, runs in (("train", 4), ("train_large", 8), ("grid", 6), ("seed_b", 4), ("train_cached", 4)):
        summary = steps[name]["result"]
        assert summary["num_runs"] == runs and "runs" not in summary, name
        assert summary["wall_seconds"] > summary["train_seconds"] > 0 and 0 <= summary["solved_runs"] <= runs
    assert steps["grid"]["result"]["num_groups"] == 3
    assert steps["seed_b"]["result"]["preset"] == "seed-b"
    assert steps["search_plan"]["result"] is None and "plan only: nothing was trained" in \
        steps["search_plan"]["output_tail"]
    search = steps["search"]["result"]
    assert search["num_groups"] == 16 and search["confirmation"]["seeds"] == [2, 3]
    assert steps["seed_b"]["result"]["episodes_per_run"] == [20]
    assert steps["train"]["result"]["compile_cache_hits"] == 0
    assert steps["train_cached"]["result"]["compile_cache_hits"] >= 1  # the compile cache filled by "train"
    log = (out / "steps.log").read_text()
    assert all(f"--out {work / name}" in log for name in ("train", "grid", "seed_b"))
