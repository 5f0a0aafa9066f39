"""Digests of training results, to check that a refactor keeps them bitwise.

    python experiments/digests.py                 # train the reference runs, print one digest per file
    python experiments/digests.py --out FILE.json # also write them

Each reference run is `python -m pgjax.train` in a fresh process (so the
command line, the compile groups and the device setup are those a user gets);
the digest of `metrics.npz` covers every array's name, dtype, shape and bytes
(the zip container itself holds timestamps), that of `params.msgpack` the
file's bytes. Two checkouts that print the same digests trained the same
numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# name -> extra arguments of `python -m pgjax.train`; small budgets that still take every path
# (constant / per-episode / batch baselines, a learned value with GAE, a Gaussian policy).
REFERENCE_RUNS = {
    "default": [],
    "seed-a": ["--preset", "seed-a", "--num-seeds", "16", "--num-updates", "500"],
    "seed-b": ["--preset", "seed-b", "--num-seeds", "16", "--num-updates", "500"],
    "Acrobot-v1": ["--env", "Acrobot-v1", "--num-seeds", "16"],
    "Pendulum-v1": ["--env", "Pendulum-v1", "--num-seeds", "8", "--num-updates", "200"],
}


def metrics_digest(path: Path) -> str:
    """MD5 over every array of an .npz: name, dtype, shape and bytes, in name order."""
    digest = hashlib.md5()
    with np.load(path) as arrays:
        for name in sorted(arrays.files):
            array = np.ascontiguousarray(arrays[name])
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def run_digests(name: str, extra: list[str], folder: Path) -> dict:
    out = folder / name
    command = [sys.executable, "-m", "pgjax.train", "--quiet", "--compile-cache", "off", "--out", str(out), *extra]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "args": extra,
        "metrics.npz": metrics_digest(out / "metrics.npz"),
        "params.msgpack": file_digest(out / "params.msgpack"),
        "solved_fraction": summary["solved_fraction"],
        "env_steps_total": summary["env_steps_total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file to write the digests to")
    parser.add_argument("--runs", nargs="*", choices=list(REFERENCE_RUNS), default=list(REFERENCE_RUNS))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.runs:
            results[name] = run_digests(name, REFERENCE_RUNS[name], Path(folder))
            entry = results[name]
            print(f"{name:12s} metrics {entry['metrics.npz']}  params {entry['params.msgpack']}  "
                  f"solved {entry['solved_fraction']}  env steps {entry['env_steps_total']:,}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
