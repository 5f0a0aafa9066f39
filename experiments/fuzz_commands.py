"""Random invocations of the five commands, judged as a user and an attacker would judge them.

    python experiments/fuzz_commands.py --cases 1000 --seed 7 --jobs 2 --out experiments/results/fuzz_commands.json
    python experiments/fuzz_commands.py --cases 1000 --seed 7 --full-disk-only \
        --out experiments/results/fuzz_commands_full_disk.json      # only that campaign's full-disk cases

Each case is one command (train, evaluate, plot, compare, bench) with a few of its
flags, drawn from the flags the command declares (`pgjax.commands.shared.flags_of`) and given
values from a pool of edge cases (empty, zero, negative, huge, float32's limits,
NaN, paths that cannot be written, a user's existing files, ranges, factories that
do not exist), over run folders made here: a finished one, an interrupted one,
damaged copies (`DAMAGE`: summary.json `[]`, empty, binary, a folder or of wrong
types; metrics.npz and params.msgpack truncated, missing or of other arrays; a
damaged marker, runs.csv, curves or evaluation.json; config.json without `grid`
or a list; checkpoints/ a file) and copies with a symbolic link leading outside
the folder (`LINKS`: summary.json, metrics.npz, params.msgpack; of an interrupted
run config.json, checkpoints/, a chunk's folder and the lock file). Every case runs
in a fresh process in an empty working folder. Case i is drawn from
`random.Random(f"{seed}-{i}")`, so a campaign is the same with any --jobs.

Two more kinds of case: a user's files given as an output (`--out`, `--render`:
`notes`, `notes.png`, `notes.json`, `notes.gif` and a folder holding a
comparison.json and a performance_profiles.png of the user's), which must stay
byte for byte as they were with nothing written beside them; and, where a small
tmpfs can be mounted (root), a full disk: train, plot, compare, bench and
evaluate --render writing onto a 300 KiB file system with about 16 KiB free.

Verdicts:

* "ran": exit status 0;
* "refused": exit status 2 with one line `error: ...` on stderr, no traceback,
  nothing written (the working folder stays empty, --out is not created, the run
  folders given are unchanged);
* "stopped" (full-disk cases only): a non-zero exit status with at most three
  lines on stderr, no traceback and no temporary file left;
* "timeout": still running after --timeout seconds (a plan too big to refuse?);
* "failed": anything else (a traceback, another exit status, several lines, a
  file left behind by a refusal, a user's file changed or given a sibling, exit
  status 0 where a link leading outside the run folder had to be read). The
  script exits 1 if any case failed.

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
import threading
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
# A user's files given as outputs: they must stay byte for byte as they are, with nothing written beside them.
USER_FILES = {"notes": b"my notes\n", "notes.png": b"not an image\n", "notes.json": b'{"mine": true}\n',
              "notes.gif": b"GIF? no\n"}
USER_FOLDER_FILES = {"comparison.json": b'{"mine": true}\n', "performance_profiles.png": b"my plot\n"}
# Damaged copies of the finished run: folder name -> (file, new content: bytes, None for the first half of the
# file, "missing", "folder" for a folder in its place)
DAMAGE = {
    "summary-list": ("summary.json", b"[]"),
    "summary-invalid": ("summary.json", b'{"runs": [,'),
    "summary-empty": ("summary.json", b""),
    "summary-binary": ("summary.json", b"\xff\xfe\x00\x81garbage"),
    "summary-types": ("summary.json", b'{"env": "CartPole-v1", "runs": [{"seed": "x", "group": 0}], "groups": [{}]}'),
    "summary-folder": ("summary.json", "folder"),
    "metrics-truncated": ("metrics.npz", None),
    "metrics-missing": ("metrics.npz", "missing"),
    "params-truncated": ("params.msgpack", None),
    "params-missing": ("params.msgpack", "missing"),
    "params-garbage": ("params.msgpack", b"\xc1\xc1\xc1 not msgpack"),
    "config-no-grid": ("config.json", b'{"run": {}, "preset": "default"}'),
    "marker-damaged": (".pgjax-run.json", b"{"),
    "runs-csv-garbage": ("runs.csv", b"\x00\x01\x02,,\n"),
    "curves-truncated": ("curves.parquet", None),
    "evaluation-garbage": ("evaluation.json", b"[1"),
}
# Interrupted copies damaged: what --resume is given
RESUME_DAMAGE = {
    "interrupted-config-list": ("config.json", b"[1, 2]"),
    "interrupted-checkpoints-file": ("checkpoints", b"not a folder"),
}
# Copies with a link leading outside the folder: folder name -> (the file linked, the commands that must not
# exit 0 on it: every one that reads that file)
LINKS = {
    "linked-summary": ("summary.json", ("plot", "compare", "evaluate")),
    "linked-metrics": ("metrics.npz", ("plot",)),
    "linked-params": ("params.msgpack", ("evaluate",)),
    "interrupted-linked-config": ("config.json", ("train",)),
    "interrupted-linked-checkpoints": ("checkpoints", ("train",)),
    "interrupted-linked-chunk": ("checkpoints/chunk-0000", ("train",)),
    "interrupted-linked-lock": (".pgjax.lock", ("train",)),
}
FULL_DISK_SIZE, FULL_DISK_FREE = 300 * 1024, 16 * 1024


def _path_pool(work: Path) -> list[str]:
    read_only = work / "read-only"
    return ["", "/", ".", "/proc/pgjax-fuzz", str(work / "a-file" / "x"), str(read_only / "x"), str(read_only),
            "new-folder", "n" * 300, str(work / "fresh" / "deeper" / "out.json"),
            *(str(work / "user" / name) for name in USER_FILES), str(work / "user" / "folder")]


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


def _damage(folder: Path, file: str, content) -> None:
    path = folder / file
    if content is None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    if content == "folder":
        path.mkdir()
    elif content != "missing":
        path.write_bytes(content)


def _link_outside(folder: Path, file: str, outside: Path) -> None:
    """Move `folder / file` to `outside` (made up if missing) and leave an absolute link to it in its place."""
    path = folder / file
    target = outside / f"{folder.name}-{file.replace('/', '-')}"
    if path.exists():
        shutil.move(path, target)
    else:  # the lock file: none while no command holds the folder
        target.write_text("precious\n")
    path.symlink_to(target)


def make_folders(work: Path) -> dict[str, Path]:
    """The run folders the cases read: a finished run, an interrupted one, damaged and linked copies, a file."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PGJAX_COMPILE_CACHE": str(work / "cache")}
    folders = {"finished": work / "finished", "acrobot": work / "acrobot"}
    for name, extra in (("finished", ["--lr", "0.01", "0.03"]), ("acrobot", ["--env", "Acrobot-v1", "--lr", "0.01",
                                                                           "0.03"])):
        subprocess.run([sys.executable, "-m", "pgjax.train", *SMALL, *extra, "--quiet", "--out",
                        str(folders[name])], env=env, check=True, capture_output=True, cwd=work)
    subprocess.run([sys.executable, "-m", "pgjax.evaluate", str(folders["finished"]), "--episodes", "1"], env=env,
                   check=True, capture_output=True, cwd=work)  # an evaluation.json to damage
    for name, (file, content) in DAMAGE.items():
        folders[name] = work / name
        shutil.copytree(folders["finished"], folders[name])
        _damage(folders[name], file, content)
    interrupted = work / "interrupted"
    shutil.copytree(folders["finished"], interrupted)
    (interrupted / "summary.json").unlink()
    folders["interrupted"] = interrupted
    for name, (file, content) in RESUME_DAMAGE.items():
        folders[name] = work / name
        shutil.copytree(interrupted, folders[name])
        _damage(folders[name], file, content)
    outside = work / "outside"
    outside.mkdir()
    for name, (file, _) in LINKS.items():
        folders[name] = work / name
        shutil.copytree(interrupted if name.startswith("interrupted") else folders["finished"], folders[name])
        _link_outside(folders[name], file, outside)
    inside = folders["linked-inside"] = work / "linked-inside"  # a link that stays inside: read as any file
    shutil.copytree(folders["finished"], inside)
    (inside / "summary.json").rename(inside / "real-summary.json")
    (inside / "summary.json").symlink_to("real-summary.json")
    (work / "a-file").write_text("not a folder")
    folders["a-file"] = work / "a-file"
    folders["missing"] = work / "missing"
    (work / "read-only").mkdir()
    (work / "read-only").chmod(0o555)
    user = work / "user"
    (user / "folder").mkdir(parents=True)
    for name, content in USER_FILES.items():
        (user / name).write_bytes(content)
    for name, content in USER_FOLDER_FILES.items():
        (user / "folder" / name).write_bytes(content)
    return folders


def mount_full_disk(work: Path) -> Path | None:
    """A tmpfs of FULL_DISK_SIZE at work/full with about FULL_DISK_FREE left (a filler file); None where it cannot
    be mounted (not root, no mount)."""
    full = work / "full"
    full.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FULL_DISK_SIZE}", "tmpfs", str(full)],
                              capture_output=True)
    except OSError:
        return None
    if done.returncode != 0:
        return None
    free = shutil.disk_usage(full).free
    (full / "filler").write_bytes(b"\0" * max(0, free - FULL_DISK_FREE))
    return full


def unmount(full: Path | None) -> None:
    if full is not None:
        subprocess.run(["umount", str(full)], capture_output=True)


def make_case(rng: random.Random, work: Path, folders: dict[str, Path], full: Path | None
              ) -> tuple[str, list[str], str | None, bool]:
    """(command, argv, the linked folder it must not run through (None), a full-disk case)."""
    if full is not None and rng.random() < 0.06:
        return _full_disk_case(rng, full, folders) + (None, True)
    command = rng.choice(["train", "train", "train", "evaluate", "plot", "compare", "bench"])
    if command == "train":
        flags = flags_of(options.train_arguments())
    else:
        flags = flags_of({"evaluate": evaluate.Args, "plot": plot.Args, "compare": compare.Args,
                          "bench": bench.bench_arguments("default", None)}[command])
    argv: list[str] = []
    names: list[str] = []
    if command in ("evaluate", "plot", "compare"):
        count = 1 if command == "evaluate" else rng.choice([1, 1, 2])
        names = rng.sample(sorted(folders), count)
        if rng.random() < 0.15:  # a folder with a link, leading outside or inside, more often than 4 in 40
            names[0] = rng.choice(["linked-summary", "linked-metrics", "linked-params", "linked-inside"])
        argv += [str(folders[n]) for n in names]
    for flag in rng.sample(flags, k=min(len(flags), rng.choice([1, 1, 2, 3]))):
        argv += [flag.names[0], *_value(flag, work, rng)]
    if command == "train":
        if "--resume" in argv:  # a resume takes a fresh copy of an interrupted folder, damaged or linked
            source = rng.choice(["interrupted", "interrupted", *RESUME_DAMAGE,
                                 *(name for name in LINKS if name.startswith("interrupted"))])
            copy = Path(tempfile.mkdtemp(dir=work)) / source
            shutil.copytree(folders[source], copy, symlinks=True)
            argv[argv.index("--resume") + 1] = str(copy)
            names = [source]
        argv = [*SMALL, *argv] if not any(f in argv for f in SMALL[::2]) else argv
    if command == "bench" and "--quick" not in argv and rng.random() < 0.7:
        argv.append("--quick")
    linked = next((n for n in names if n in LINKS and command in LINKS[n][1]), None)
    return command, argv, linked, False


def _full_disk_case(rng: random.Random, full: Path, folders: dict[str, Path]) -> tuple[str, list[str]]:
    name = f"out-{rng.randrange(10**9)}"
    return rng.choice([
        ("train", [*SMALL, "--out", str(full / name)]),
        ("plot", [str(folders["finished"]), "--out", str(full / f"{name}.png")]),
        ("compare", [str(folders["finished"]), "--out", str(full / name), "--resamples", "100"]),
        ("bench", ["--quick", "--out", str(full / f"{name}.json")]),
        ("evaluate", [str(folders["finished"]), "--episodes", "1", "--render", str(full / f"{name}.gif")]),
    ])


def snapshot(paths: list[Path]) -> dict[str, int]:
    found = {}
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for item in path.rglob("*"):
                found[str(item)] = item.lstat().st_mtime_ns if item.is_file() else 0
        elif path.exists() or path.is_symlink():
            found[str(path)] = path.lstat().st_mtime_ns
    return found


def user_harm(work: Path) -> str:
    """What the cases did to the user's files (`USER_FILES`, `USER_FOLDER_FILES`): changed or removed one, or
    wrote beside one (`<name>.<suffix>`). A command may write its own files into the user's folder."""
    user = work / "user"
    originals = {**USER_FILES, **{f"folder/{name}": content for name, content in USER_FOLDER_FILES.items()}}
    changed = [name for name, content in originals.items()
               if not (user / name).is_file() or (user / name).read_bytes() != content]
    if changed:
        return f"changed the user's {changed[:3]}"
    found = [p.relative_to(user).as_posix() for p in user.rglob("*")]
    siblings = [name for name in found if name not in originals and any(name.startswith(f"{old}.")
                                                                        for old in originals)]
    return f"wrote beside the user's files: {siblings[:3]}" if siblings else ""


def run_case(command: str, argv: list[str], work: Path, folders: dict[str, Path], timeout: float,
             linked: str | None = None, full: Path | None = None) -> dict:
    cwd = Path(tempfile.mkdtemp(dir=work, prefix="cwd-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PGJAX_COMPILE_CACHE": str(work / "cache")}
    watched = [*folders.values(), work / "outside"]
    before = snapshot(watched)
    on_disk = set(full.iterdir()) if full is not None else set()
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", f"pgjax.{command}", *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"command": command, "argv": argv, "verdict": "timeout", "seconds": timeout}
    finally:
        left = sorted(str(p) for p in full.rglob("*.tmp")) if full is not None else []
        for path in (set(full.iterdir()) - on_disk) if full is not None else ():  # the disk stays as full
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    seconds = time.perf_counter() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    verdict, why = "failed", ""
    harm = user_harm(work)
    if harm:
        why = harm
    elif done.returncode == 0:
        verdict, why = ("failed", f"ran through {linked}, a link leading outside") if linked else ("ran", "")
    elif full is not None:
        if "Traceback" in done.stderr:
            why = "traceback"
        elif len(lines) > 3:
            why = f"{len(lines)} lines on stderr"
        elif left:
            why = f"left {left[:3]}"
        else:
            verdict = "stopped"
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
            "seconds": round(seconds, 1), "full_disk": full is not None, "linked": linked,
            "stderr_tail": done.stderr[-600:] if verdict == "failed" else lines[-1:]}


VERDICTS = ("ran", "refused", "stopped", "timeout", "failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once, each worker with its own folders")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--full-disk-only", action="store_true",
                        help="run only the cases drawn onto the full disk (the same draws as without it)")
    args = parser.parse_args()
    skipped: set[int] = set()
    results: list[dict | None] = [None] * args.cases
    next_case, lock = iter(range(args.cases)), threading.Lock()
    mounted: list[bool] = []

    def save() -> dict:
        """The counts so far; written to --out after every case (a campaign stopped early keeps what it ran)."""
        ran = [r for r in results if r is not None]
        counts = {v: sum(r["verdict"] == v for r in ran) for v in VERDICTS}
        counts["full_disk_cases"] = sum(r.get("full_disk", False) for r in ran)
        counts["linked_cases"] = sum(r.get("linked") is not None for r in ran)
        if args.out:
            tmp = args.out.with_name(args.out.name + ".tmp")
            tmp.write_text(json.dumps({"seed": args.seed, "cases": len(ran), "asked": args.cases, "jobs": args.jobs,
                                       "full_disk_mounted": all(mounted), "counts": counts, "results": ran},
                                      indent=1) + "\n")
            tmp.replace(args.out)
        return counts

    def worker(work: Path) -> None:
        work.mkdir()
        folders = make_folders(work)
        full = mount_full_disk(work)
        mounted.append(full is not None)
        try:
            while True:
                with lock:
                    i = next(next_case, None)
                if i is None:
                    return
                command, argv, linked, full_disk = make_case(random.Random(f"{args.seed}-{i}"), work, folders, full)
                if args.full_disk_only and not full_disk:
                    with lock:
                        skipped.add(i)
                    continue
                result = run_case(command, argv, work, folders, args.timeout, linked, full if full_disk else None)
                with lock:
                    results[i] = result
                    save()
                    done = sum(r is not None for r in results)
                    print(f"{done:4d} #{i:<4d} {result['verdict']:8s} {command} {' '.join(argv)}"
                          + (f"  <- {result.get('why')}: {result.get('stderr_tail')!r}" if result["verdict"] == "failed"
                             else f"  | {result.get('stderr_tail', [''])[-1:]}" if result["verdict"] != "ran" else ""),
                          flush=True)
        finally:
            unmount(full)
            (work / "read-only").chmod(0o755)

    with tempfile.TemporaryDirectory(prefix="pgjax-fuzz-") as tmp:
        threads = [threading.Thread(target=worker, args=(Path(tmp) / f"w{k}",)) for k in range(args.jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    counts = save()
    print(" | ".join(f"{k} {v}" for k, v in counts.items()) + f" (full disk mounted: {all(mounted)})")
    return 1 if counts["failed"] or any(r is None for i, r in enumerate(results) if i not in skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
