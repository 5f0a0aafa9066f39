"""mkdocs hooks: pages that follow the code instead of copying it.

* `<!-- help: pgjax.train -->` in a page becomes the text that
  `python -m pgjax.train --help` prints at build time (any entry point);
* `<!-- presets -->` becomes a table of every preset and environment preset,
  read from `pgjax.algo.presets` at build time;
* `<!-- modules -->` becomes a table of pgjax's modules, layer by layer, with the
  first line of each module's docstring;
* `<!-- api -->` becomes a mkdocstrings entry for every public name of `pgjax`
  (its `__all__`), under the layer of the module that defines it;
* `<!-- suites-table -->` becomes the table of the suites' measured tasks, read from
  `experiments/results/suites/*.json` (written by `experiments/suites_table.py`);
* `<!-- gradient-estimator-table -->` becomes the tables of the tutorials' gradient estimators on CartPole,
  read from `experiments/results/gradient_estimator.json` (written by `experiments/gradient_estimator.py`);
* `experiments/results/*.png` figures are served as `figures/<name>.png`.

Each command runs in a subprocess with this checkout first on PYTHONPATH, so the
pages describe the code being built; a command that fails fails the build.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
HELP = re.compile(r"<!-- help: (pgjax(?:\.\w+)*) -->")
PRESETS = "<!-- presets -->"
MODULES = "<!-- modules -->"
API = "<!-- api -->"
SUITES_TABLE = "<!-- suites-table -->"
GRADIENT_ESTIMATOR_TABLE = "<!-- gradient-estimator-table -->"
LAYERS = {"pgjax.algo": "The algorithm (`pgjax.algo`)", "pgjax.running": "Running (`pgjax.running`)",
          "pgjax.results": "Results (`pgjax.results`)"}
_cache: dict[tuple[str, ...], str] = {}

_PRESETS_SCRIPT = r"""
import dataclasses
from pgjax.algo.config import Config
from pgjax.algo.presets import ENV_PRESETS, PRESETS

base = Config()

def differences(config):
    out = []
    for part, default in ((config.static, base.static), (config.hparams, base.hparams)):
        for field in dataclasses.fields(part):
            value, default_value = getattr(part, field.name), getattr(default, field.name)
            if value != default_value and field.name != "env":
                if isinstance(value, tuple):
                    value = ",".join(str(v) for v in value)
                out.append(f"`{field.name}={value}`")
    return ", ".join(out) or "(the defaults)"

print("| preset | environment | settings that differ from the dataclass defaults |")
print("|---|---|---|")
for name, config in PRESETS.items():
    print(f"| `{name}` | {config.static.env} | {differences(config)} |")
for env, config in ENV_PRESETS.items():
    print(f"| `default` with `--env {env}` | {env} | {differences(config)} |")
print()
parts = (base.static, base.hparams)
defaults = [f"`{f.name}={getattr(part, f.name)}`" for part in parts for f in dataclasses.fields(part)]
print("The dataclass defaults (`Config()`): " + ", ".join(defaults) + ".")
"""


def _run(*args: str) -> str:
    """stdout of `python *args` in this checkout; raises PluginError if it fails."""
    if args in _cache:
        return _cache[args]
    env = dict(os.environ, COLUMNS="100", NO_COLOR="1", TERM="dumb", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise PluginError(f"docs/hooks.py: `python {' '.join(args)[:80]}` failed:\n{result.stderr[-2000:]}")
    _cache[args] = result.stdout.rstrip()
    return _cache[args]


def _modules_table() -> str:
    """Every module of the package, layer by layer, with its docstring's first line (read, not imported)."""
    rows = ["| layer | module | what it is |", "|---|---|---|"]
    layers = [("algorithm", "pgjax/algo"), ("running", "pgjax/running"), ("results", "pgjax/results"),
              ("commands", "pgjax/commands"), ("entry points", "pgjax")]
    for layer, folder in layers:
        paths = (ROOT / folder).glob("*.py") if folder == "pgjax" else (ROOT / folder).rglob("*.py")
        for path in sorted(paths):
            if path.name == "__init__.py" and folder != "pgjax":
                continue
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            first = doc.strip().splitlines()[0] if doc.strip() else ""
            shown = "package" if path.name == "__init__.py" else layer
            rows.append(f"| {shown} | `{path.relative_to(ROOT).as_posix()}` | {first.replace('|', '/')} |")
    return "\n".join(rows)


def _public_names() -> dict[str, str]:
    """pgjax's public names -> their defining module, read from pgjax/__init__.py without importing it."""
    tree = ast.parse((ROOT / "pgjax" / "__init__.py").read_text())
    where: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pgjax"):
            where.update({alias.asname or alias.name: node.module for alias in node.names})
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets) and node.value is not None:
            where.update(ast.literal_eval(node.value))
    all_names = next(
        (n.value for n in tree.body if isinstance(n, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)), None)
    if all_names is None:
        raise PluginError("docs/hooks.py: pgjax/__init__.py has no __all__")
    names = [e.value for e in all_names.elts if isinstance(e, ast.Constant)]
    names += [n for e in all_names.elts if isinstance(e, ast.Starred) for n in where if n not in names]
    missing = [n for n in names if n not in where]
    if missing:
        raise PluginError(f"docs/hooks.py: cannot tell where pgjax's {missing} are defined")
    return {n: where[n] for n in names}


def _api_entries() -> str:
    by_layer: dict[str, list[str]] = {title: [] for title in LAYERS.values()}
    for name, module in _public_names().items():
        layer = next((title for prefix, title in LAYERS.items() if module.startswith(prefix)), "Other")
        by_layer.setdefault(layer, []).append(f"::: {module}.{name}\n")
    return "\n".join(f"## {title}\n\n" + "\n".join(entries) for title, entries in by_layer.items() if entries)


def _number(value: float, digits: int = 3) -> str:
    """`digits` significant digits; thousands and millions as k and M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"


def _suites_table() -> str:
    """One row per `experiments/results/suites/*.json`: the task, the random policy, pgjax's IQM [95% CI], env
    steps per run, training and raw-environment steps/s, compile seconds."""
    rows = ["| task | `--env-kwargs` | step limit | random policy | pgjax IQM [95% CI] | seeds | env steps per run | "
            "training steps/s | raw env steps/s (batch) | compile s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted((ROOT / "experiments" / "results" / "suites").glob("*.json")):
        record = json.loads(path.read_text())
        trained, random, raw = record["trained"], record["random_policy"], record["raw_env"]
        low, high = trained["iqm_ci"]
        kwargs = " ".join(record["env_kwargs"]) or "-"
        cells = [f"`{record['env']}`", kwargs, str(record["max_steps"]), _number(random["mean"], 4),
                 f"{_number(trained['iqm'], 4)} [{_number(low, 4)}, {_number(high, 4)}]", str(trained["runs"]),
                 _number(trained["env_steps_per_run"]), _number(trained["train_steps_per_second"]),
                 f"{_number(raw['steps_per_second'])} ({raw['batch']})", f"{trained['compile_seconds']:.0f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _interval(values: list[float], digits: int = 3) -> str:
    """ "1.23 [1.1, 1.4]": a [point, low, high] triple."""
    point, low, high = values
    return f"{_number(point, digits)} [{_number(low, 2)}, {_number(high, 2)}]"


def _gradient_estimator_table() -> str:
    """Two tables from `experiments/results/gradient_estimator.json`: per preset and stage, the median over runs of
    each weighting's SNR and cosine, and of 001's against 000's (with how many runs' paired 95% intervals lie
    wholly above or below no difference; no SNR ratio where 000's SNR interval reaches 0 in a run: the ratio is
    unbounded there); then every run's points and intervals."""
    import statistics

    record = json.loads((ROOT / "experiments" / "results" / "gradient_estimator.json").read_text())
    names = [name for name in record["weightings"] if name != "episode"]  # the whole return: in the last ratio
    by_stage: dict[tuple[str, str], list[dict]] = {}
    for policy in record["policies"]:
        by_stage.setdefault((policy["preset"], policy["stage"]), []).append(policy)

    def median(entries, name, statistic):
        return _number(statistics.median(e["weightings"][name][statistic][0] for e in entries))

    def sides(entries, statistic, level):
        above = sum(e["weightings"]["001"][statistic][1] > level for e in entries)
        below = sum(e["weightings"]["001"][statistic][2] < level for e in entries)
        return f"{median(entries, '001', statistic)} ({above} / {below})"

    summary = ["| policy | updates | mean return | " + " | ".join(f"SNR {n}" for n in names) + " | "
               + " | ".join(f"cosine {n}" for n in names) + " | cosine 001 - 000 (runs above / below 0) | "
               "SNR 001 / 000 (runs above / below 1) | variance 001 / 000 | variance reward_to_go / episode "
               "(runs above / below 1) |",
               "|---|---|---|" + "---|" * (2 * len(names) + 4)]
    for (preset, stage), entries in by_stage.items():
        cells = [f"{preset}, {stage}", str(entries[0]["updates"]),
                 _number(statistics.median(e["mean_return"] for e in entries))]
        cells += [median(entries, name, "snr") for name in names]
        cells += [median(entries, name, "cosine") for name in names]
        noise = sum(e["weightings"]["000"]["snr"][1] <= 0 for e in entries)  # 000's SNR interval reaches 0
        ratio = sides(entries, "snr_ratio", 1.0) if not noise else f"- (000's SNR is noise in {noise} runs)"
        cells += [sides(entries, "cosine_difference", 0.0), ratio, median(entries, "001", "variance_ratio")]
        to_episode = [e["weightings"]["reward_to_go"]["variance_ratio_to_episode"] for e in entries]
        cells.append(f"{_number(statistics.median(r[0] for r in to_episode))} ({sum(r[1] > 1 for r in to_episode)}"
                     f" / {sum(r[2] < 1 for r in to_episode)})")
        summary.append("| " + " | ".join(cells) + " |")
    runs = ["| policy | run | mean return | " + " | ".join(f"SNR {n}" for n in names) + " | "
            + " | ".join(f"cosine {n}" for n in names) + " | cosine 001 - 000 | SNR 001 / 000 |",
            "|---|---|---|" + "---|" * (2 * len(names) + 2)]
    for policy in record["policies"]:
        weightings = policy["weightings"]
        cells = [f"{policy['preset']}, {policy['stage']}", str(policy["run"]), _number(policy["mean_return"])]
        cells += [_interval(weightings[name]["snr"]) for name in names]
        cells += [_interval(weightings[name]["cosine"]) for name in names]
        cells += [_interval(weightings["001"][k]) for k in ("cosine_difference", "snr_ratio")]
        runs.append("| " + " | ".join(cells) + " |")
    return "\n".join(summary) + "\n\nEvery run (95% paired intervals):\n\n" + "\n".join(runs)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def help_block(match: re.Match) -> str:
        module = match.group(1)
        return f"```text\n$ python -m {module} --help\n{_run('-m', module, '--help')}\n```"

    markdown = HELP.sub(help_block, markdown)
    if PRESETS in markdown:
        markdown = markdown.replace(PRESETS, _run("-c", _PRESETS_SCRIPT))
    if API in markdown:
        markdown = markdown.replace(API, _api_entries())
    if MODULES in markdown:
        markdown = markdown.replace(MODULES, _modules_table())
    if SUITES_TABLE in markdown:
        markdown = markdown.replace(SUITES_TABLE, _suites_table())
    if GRADIENT_ESTIMATOR_TABLE in markdown:
        markdown = markdown.replace(GRADIENT_ESTIMATOR_TABLE, _gradient_estimator_table())
    return markdown


def on_files(files, config):
    for png in sorted((ROOT / "experiments" / "results").glob("*.png")):
        files.append(File.generated(config, f"figures/{png.name}", abs_src_path=str(png)))
    return files
