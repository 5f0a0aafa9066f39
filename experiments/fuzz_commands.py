"""Random invocations of the five commands, judged as a user and an attacker would judge them.

    python experiments/fuzz_commands.py --cases 120 --seed 7 --out experiments/results/fuzz_commands.json

Each case is one command (train, evaluate, plot, compare, bench) with a few of its
flags, drawn from the flags the command declares (`pgjax.commands.shared.flags_of`) and given
values from a pool of edge cases (empty, zero, negative, huge, float32's limits,
NaN, paths that cannot be written, ranges, factories that do not exist), over
run folders made here: a finished one, an interrupted one, and damaged copies
(summary.json `[]`, truncated metrics.npz and params.msgpack, config.json without
`grid`, invalid JSON). Every case runs in a fresh process in an empty working
folder. Its verdict:

* "ran": exit status 0;
* "refused": exit status 2 with one line `error: ...` on stderr, no traceback,
  nothing written (the working folder stays empty, --out is not created, the run
  folders given are unchanged);
* "timeout": still running after --timeout seconds (a plan too big to refuse?);
* "failed": anything else (a traceback, another exit status, several lines, a
  file left behind by a refusal). The script exits 1 if any case failed.

Training flags get small budgets first (--num-updates 2 --num-seeds 2
--episodes-per-update 1) unless a case draws those flags itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgjax.commands import bench, compare, evaluate, options, plot  # noqa: E402
from pgjax.commands.shared import flags_of  # noqa: E402

SMALL = ["--num-updates", "2", "--num-seeds", "2", "--episodes-per-update", "1"]
NUMBERS = ["0", "-1", "1", "2", "3", "0.5", "1e39", "-1e39", "1e-320", "1e-50", "nan", "inf", "-inf", "4294967295",
           "4294967296", "9223372036854775808", "99999999999999999999", "1000000000000", "1e-3:1e-1:log", "5:1",
           "0:0", "a", "", "1,2"]
NAMES = ["", "x", "mlp", "cnn", "os:getcwd", "tests.custom:make_chain", "tests.custom:nothing", "no.such:thing",
         "CartPole-v1", "Acrobot-v1", "NoSuchEnv-v0", "gymnax.environments.classic_control.cartpole:CartPole"]


def _path_pool(work: Path) -> list[str]:
    read_only = work / "read-only"
    return ["", "/", ".", "/proc/pgjax-fuzz", str(work / "a-file" / "x"), str(read_only / "x"), str(read_only),
            "new-folder", "n" * 300, str(work / "fresh" / "deeper" / "out.json")]


def _value(flag, work: Path, rng: random.Random) -> list[str]:
    element = flag.element
    if element is bool:
        return []
    if element in (int, float) or hasattr(element, "__metadata__"):
        count = rng.choice([1, 1, 1, 2, 3]) if flag.several else 1
        return [rng.choice(NUMBERS) for _ in range(count)]
    text = str(element)
    if "Path" in text or any(word in flag.names[0] for word in ("out", "cache", "resume", "render", "tensorboard")):
        return [rng.choice(_path_pool(work))]
    if "Literal" in text:
        import typing

        return [rng.choice([*map(str, typing.get_args(element)), "bogus", ""])]
    count = rng.choice([1, 1, 2]) if flag.several else 1
    return [rng.choice(NAMES) for _ in range(count)]


def make_folders(work: Path) -> dict[str, Path]:
    """The run folders the cases read: a finished run, an interrupted one, damaged copies, a file."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PGJAX_COMPILE_CACHE": str(work / "cache")}
    folders = {"finished": work / "finished", "acrobot": work / "acrobot"}
    for name, extra in (("finished", ["--lr", "0.01", "0.03"]), ("acrobot", ["--env", "Acrobot-v1", "--lr", "0.01",
                                                                           "0.03"])):
        subprocess.run([sys.executable, "-m", "pgjax.train", *SMALL, *extra, "--quiet", "--out",
                        str(folders[name])], env=env, check=True, capture_output=True, cwd=work)
    damaged = {
        "summary-list": ("summary.json", b"[]"),
        "summary-invalid": ("summary.json", b'{"runs": [,'),
        "metrics-truncated": ("metrics.npz", None),
        "params-truncated": ("params.msgpack", None),
        "config-no-grid": ("config.json", b'{"run": {}, "preset": "default"}'),
    }
    for name, (file, content) in damaged.items():
        copy = work / name
        shutil.copytree(folders["finished"], copy)
        data = (copy / file).read_bytes()
        (copy / file).write_bytes(content if content is not None else data[: len(data) // 2])
        folders[name] = copy
    interrupted = work / "interrupted"
    shutil.copytree(folders["finished"], interrupted)
    (interrupted / "summary.json").unlink()
    folders["interrupted"] = interrupted
    (work / "a-file").write_text("not a folder")
    folders["a-file"] = work / "a-file"
    folders["missing"] = work / "missing"
    (work / "read-only").mkdir()
    (work / "read-only").chmod(0o555)
    return folders


def make_case(rng: random.Random, work: Path, folders: dict[str, Path]) -> tuple[str, list[str]]:
    command = rng.choice(["train", "train", "train", "evaluate", "plot", "compare", "bench"])
    if command == "train":
        flags = flags_of(options.train_arguments())
    else:
        flags = flags_of({"evaluate": evaluate.Args, "plot": plot.Args, "compare": compare.Args,
                          "bench": bench.bench_arguments("default", None)}[command])
    argv: list[str] = []
    if command in ("evaluate", "plot", "compare"):
        count = 1 if command == "evaluate" else rng.choice([1, 1, 2])
        names = rng.sample(sorted(folders), count)
        argv += [str(folders[n]) for n in names]
    for flag in rng.sample(flags, k=min(len(flags), rng.choice([1, 1, 2, 3]))):
        argv += [flag.names[0], *_value(flag, work, rng)]
    if command == "train":
        if "--resume" in argv:  # a resume takes a fresh copy of the interrupted folder
            copy = Path(tempfile.mkdtemp(dir=work)) / "resumed"
            shutil.copytree(folders["interrupted"], copy)
            argv[argv.index("--resume") + 1] = str(copy)
        argv = [*SMALL, *argv] if not any(f in argv for f in SMALL[::2]) else argv
    if command == "bench" and "--quick" not in argv and rng.random() < 0.7:
        argv.append("--quick")
    return command, argv


def snapshot(paths: list[Path]) -> dict[str, int]:
    found = {}
    for path in paths:
        if path.is_dir():
            for item in path.rglob("*"):
                found[str(item)] = item.stat().st_mtime_ns if item.is_file() else 0
        elif path.exists():
            found[str(path)] = path.stat().st_mtime_ns
    return found


def run_case(command: str, argv: list[str], work: Path, folders: dict[str, Path], timeout: float) -> dict:
    cwd = Path(tempfile.mkdtemp(dir=work, prefix="cwd-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PGJAX_COMPILE_CACHE": str(work / "cache")}
    watched = list(folders.values())
    before = snapshot(watched)
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", f"pgjax.{command}", *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"command": command, "argv": argv, "verdict": "timeout", "seconds": timeout}
    seconds = time.perf_counter() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    verdict, why = "failed", ""
    if done.returncode == 0:
        verdict = "ran"
    elif done.returncode == 2:
        written = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
        changed = sorted(set(snapshot(watched).items()) ^ set(before.items()))
        if "Traceback" in done.stderr:
            why = "traceback"
        elif len(lines) != 1 or not lines[0].startswith("error: "):
            why = f"{len(lines)} lines on stderr"
        elif written:
            why = f"wrote {written[:3]}"
        elif changed:
            why = f"changed {changed[:3]}"
        else:
            verdict = "refused"
    else:
        why = f"exit status {done.returncode}"
    return {"command": command, "argv": argv, "verdict": verdict, "why": why, "exit": done.returncode,
            "seconds": round(seconds, 1), "stderr_tail": done.stderr[-600:] if verdict == "failed" else lines[-1:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="pgjax-fuzz-") as tmp:
        work = Path(tmp)
        folders = make_folders(work)
        for i in range(args.cases):
            command, argv = make_case(rng, work, folders)
            result = run_case(command, argv, work, folders, args.timeout)
            results.append(result)
            print(f"{i + 1:4d} {result['verdict']:8s} {command} {' '.join(argv)}"
                  + (f"  <- {result.get('why')}: {result.get('stderr_tail')!r}" if result["verdict"] == "failed"
                     else f"  | {result.get('stderr_tail', [''])[-1:]}" if result["verdict"] == "refused" else ""),
                  flush=True)
        (work / "read-only").chmod(0o755)
    counts = {v: sum(r["verdict"] == v for r in results) for v in ("ran", "refused", "timeout", "failed")}
    print(" | ".join(f"{k} {v}" for k, v in counts.items()))
    if args.out:
        args.out.write_text(json.dumps({"seed": args.seed, "cases": args.cases, "counts": counts,
                                        "results": results}, indent=1) + "\n")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
