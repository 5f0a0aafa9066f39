"""How long each command takes to answer `--help`, `--version` and a bad flag (a checkout's start-up).

    python experiments/startup.py [--checkout DIR] [--repeats 5] [--label NAME] [--out FILE.json]

Each measurement runs `python -m pgjax.<command> ARGS` in a subprocess with the
checkout first on PYTHONPATH, `--repeats` times, and records the wall time the
parent sees (`time.perf_counter` around `subprocess.run`), and whether the
command imported JAX (one more run under `python -X importtime`). Prints the medians; with --out,
merges them under --label into that JSON file (so "before" and "after" sit side
by side). A benchmark, not a test: the figures depend on the machine's load.

    python experiments/startup.py --default-command --checkout DIR [--compare-with OLD_DIR] [--repeats 5]

measures instead the default command (`python -m pgjax.train`, one update of
one seed) and `make_env("CartPole-v1")` in Python (`IMPORT_CASES`) under
`python -X importtime`, alternating the checkouts run by run so that both see
the same load: the sum of the top-level modules' cumulative import times (all
that the process imports), the part under gymnax (every module gymnax imported
first, seaborn among them) and under seaborn, the wall and CPU time of the whole
process, and the modules the older checkout imported that the newer does not.
`-X importtime` logs the imports of `import` statements, not those of
`importlib.import_module` (gymnax's modules pgjax imports by name: their own
lines are missing, the modules they import are there); the wall and CPU times
count everything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("train", "evaluate", "plot", "compare", "bench")
CASES = {"help": ["--help"], "version": ["--version"], "bad_flag": ["--no-such-flag"]}


def timed(checkout: Path, args: list[str], repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout), "JAX_PLATFORMS": "cpu"}
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *args], env=env, cwd=checkout, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
    traced = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, cwd=checkout,
                            capture_output=True, text=True)
    imported_jax = any(line.rsplit("|", 1)[-1].strip() == "jax" for line in traced.stderr.splitlines())
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3),
            "runs_s": [round(s, 3) for s in seconds], "exit_status": done.returncode, "imports_jax": imported_jax}


# What --default-command runs under -X importtime ("{out}": a scratch folder): the default command, one update of
# one seed, and the Python API's building of the default environment.
IMPORT_CASES = {
    "default command": ["-m", "pgjax.train", "--num-updates", "1", "--num-seeds", "1", "--out", "{out}"],
    "make_env CartPole-v1": ["-c", "from pgjax.algo.envs import make_env; make_env('CartPole-v1')"],
}
GROUPS = ("gymnax", "seaborn")  # the packages whose share of the imports is reported


def import_lines(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, self µs, cumulative µs, depth) of each line `python -X importtime` wrote, in its order (a module
    after those it imported)."""
    lines = []
    for line in stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        name = fields[2][1:]
        lines.append((name.strip(), int(fields[0]), int(fields[1]), (len(name) - len(name.lstrip())) // 2))
    return lines


def grouped_seconds(lines: list[tuple[str, int, int, int]], package: str) -> float:
    """Seconds of the imports under `package`: the self times of its modules and of every module one of them
    imported first (so seaborn's count under gymnax when gymnax imported it)."""
    ancestors: list[tuple[int, str]] = []
    total = 0
    for name, self_us, _, depth in reversed(lines):  # a module before those it imported
        while ancestors and ancestors[-1][0] >= depth:
            ancestors.pop()
        ancestors.append((depth, name))
        if any(n == package or n.startswith(package + ".") for _, n in ancestors):
            total += self_us
    return total / 1e6


def measured_imports(checkout: Path, args: list[str]) -> tuple[dict, list]:
    """One run of `python -X importtime ARGS`: (its import seconds, all and per `GROUPS`, its wall seconds and
    CPU seconds (user + system, all threads: less hurt by other work on the machine than the wall); its
    `import_lines`)."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "JAX_PLATFORMS": "cpu"}
    start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, cwd=checkout, capture_output=True,
                          text=True)
    wall, now = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {checkout}: {done.stderr.splitlines()[-1:]}")
    lines = import_lines(done.stderr)
    figures = {"imports_s": sum(cum for _, _, cum, depth in lines if depth == 0) / 1e6, "wall_s": wall,
               "cpu_s": cpu}
    return figures | {f"{package}_s": grouped_seconds(lines, package) for package in GROUPS}, lines


def dropped_modules(before: list[tuple[str, int, int, int]], after: list[tuple[str, int, int, int]]) -> dict:
    """The modules a `before` run imported that an `after` run did not: how many, their self seconds (in the
    `before` run), and the ten largest."""
    imported_after = {name for name, *_ in after}
    gone = sorted(((self_us, name) for name, self_us, _, _ in before if name not in imported_after), reverse=True)
    return {"modules": len(gone), "self_s": round(sum(us for us, _ in gone) / 1e6, 3),
            "largest": [f"{name} {us / 1e6:.3f} s" for us, name in gone[:10]]}


def compare_imports(checkouts: dict[str, Path], repeats: int) -> dict:
    """`measured_imports` of each case of `IMPORT_CASES` in each labelled checkout, `repeats` times, the
    checkouts alternating: per case and label, the medians and each run's figures; with two checkouts, the
    second's `dropped_modules` (last runs)."""
    import tempfile

    found: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        for case, template in IMPORT_CASES.items():
            runs: dict[str, list[dict]] = {label: [] for label in checkouts}
            lines: dict[str, list] = {}
            for repeat in range(repeats):
                for label, checkout in checkouts.items():
                    args = [arg.replace("{out}", str(Path(scratch) / f"{label}-{repeat}")) for arg in template]
                    figures, lines[label] = measured_imports(checkout, args)
                    runs[label].append(figures)
            found[case] = {label: {"command": "python -X importtime " + " ".join(template),
                                   "median": {key: round(statistics.median(r[key] for r in each), 3)
                                              for key in each[0]},
                                   "runs": [{key: round(value, 3) for key, value in r.items()} for r in each]}
                           for label, each in runs.items()}
            if len(lines) == 2:  # what the first checkout's last run imported and the second's did not
                first, second = lines
                found[case][second]["not_imported_any_more"] = dropped_modules(lines[first], lines[second])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", default="after")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--default-command", action="store_true",
                        help="measure the default command's imports (see the module's docstring)")
    parser.add_argument("--compare-with", type=Path, help="with --default-command: an older checkout, "
                        "labelled 'before', run alternately with --checkout (labelled --label)")
    parser.add_argument("--note", default="", help="with --default-command and --out: what the checkouts are")
    args = parser.parse_args()
    if args.default_command:
        checkouts = {"before": args.compare_with} if args.compare_with else {}
        cases = compare_imports({**checkouts, args.label: args.checkout}, args.repeats)
        for case, figures in cases.items():
            for label, found in figures.items():
                print(f"{case}, {label}: " + "  ".join(f"{k} {v:.3f}" for k, v in found["median"].items()))
                if "not_imported_any_more" in found:
                    print(f"{case}, {label}: not imported any more: {found['not_imported_any_more']}")
            if args.compare_with:
                print(f"{case}, {args.label}/before: " + "  ".join(
                    f"{key} {new / old:.3f}" for key, old in figures["before"]["median"].items()
                    if old and (new := figures[args.label]["median"][key]) is not None))
        if args.out:
            data = json.loads(args.out.read_text()) if args.out.exists() else {}
            data["device"] = f"{os.cpu_count()}-core CPU container ({platform.processor() or platform.machine()})"
            data["python"] = platform.python_version()
            data["repeats"] = args.repeats
            data["note"] = args.note
            data.update(cases)
            args.out.write_text(json.dumps(data, indent=2) + "\n")
        return
    figures: dict = {"import_jax": timed(args.checkout, ["-c", "import jax"], args.repeats)}
    for command in COMMANDS:
        for case, flags in CASES.items():
            figures[f"{command} {case}"] = timed(args.checkout, ["-m", f"pgjax.{command}", *flags], args.repeats)
    for name, figure in figures.items():
        print(f"{name:20s} {figure['median_s']:6.3f} s  (exit {figure['exit_status']}, "
              f"jax imported: {figure['imports_jax']})")
    if args.out:
        data = json.loads(args.out.read_text()) if args.out.exists() else {}
        data["device"] = f"{os.cpu_count()}-core CPU container ({platform.processor() or platform.machine()})"
        data["python"] = platform.python_version()
        data["repeats"] = args.repeats
        data[args.label] = figures
        args.out.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
