"""Every command answers `--help`, `--version` and a bad flag before it imports JAX.

Each case runs the command as `python -m pgjax.<command>` does (`runpy`, as `__main__`)
in a fresh interpreter and reports, as the process ends, whether `jax` was ever
imported. No timing here: `experiments/startup.py` measures the start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "evaluate", "plot", "compare", "bench", "gradients")
CASES = {"help": (["--help"], 0), "version": (["--version"], 0), "unknown flag": (["--no-such-flag"], 2)}
BAD_VALUES = {  # a value of the wrong type or outside the choices, per command
    "train": ["--num-seeds", "many"], "evaluate": ["some_dir", "--episodes", "x"],
    "plot": ["--statistic", "median"], "compare": ["--resamples", "x"], "bench": ["--runs", "x"],
    "gradients": ["some_dir", "--episodes", "x"]}

RUNNER = """
import json, runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
code = 0
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as exit_:
    code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
sys.stdout.flush()
print(json.dumps({"jax": "jax" in sys.modules, "flax": "flax" in sys.modules, "code": code}), file=sys.stderr)
"""


def _run(module: str, args: list[str]) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    done = subprocess.run([sys.executable, "-c", RUNNER, module, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report, done.stdout + done.stderr


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", [*CASES, "bad value"])
def test_a_command_answers_before_importing_jax(command, case):
    args, code = (BAD_VALUES[command], 2) if case == "bad value" else CASES[case]
    report, output = _run(f"pgjax.{command}", args)
    assert report["code"] == code, output
    assert not report["jax"] and not report["flax"], f"pgjax.{command} {' '.join(args)} imported JAX"
    if case == "version":
        assert output.startswith("pgjax "), output


def test_the_commands_package_answers_too():
    report, output = _run("pgjax.commands.train", ["--help"])
    assert report == {"jax": False, "flax": False, "code": 0}, output


@pytest.mark.parametrize("order", ["config first", "jax first"])
def test_hyperparams_is_a_pytree_whatever_the_import_order(order):
    imports = ["import pgjax.algo.config", "import jax"]
    script = "; ".join([*(imports if order == "config first" else imports[::-1]),
                        "from pgjax.algo.config import Hyperparams",
                        "leaves = jax.tree.leaves(Hyperparams())",
                        "assert len(leaves) == len(Hyperparams.__dataclass_fields__), leaves",
                        "assert [k[0].name for k, _ in jax.tree_util.tree_flatten_with_path(Hyperparams())[0]]"
                        " == list(Hyperparams.__dataclass_fields__)",
                        "print('ok')"])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


def test_importing_pgjax_and_its_config_imports_no_jax():
    script = ("import sys, pgjax, pgjax.algo, pgjax.algo.config, pgjax.algo.presets; pgjax.configure_cpu(); "
              "print('jax' in sys.modules, 'flax' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_the_console_scripts_answer_before_importing_jax(command):
    script = (f"import sys; sys.argv = ['pgjax-{command}', '--help']\n"
              "from pgjax.commands import scripts\n"
              f"try:\n    scripts.{command}()\nexcept SystemExit as exit_:\n    code = exit_.code\n"
              "print('jax' in sys.modules, code, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.stderr.split()[-2:] == ["False", "0"], done.stderr
    assert f"usage: pgjax-{command}" in done.stdout
