"""Do two x86-64 CPUs train the same floats? One command, this CPU against an emulated one.

    python experiments/cross_cpu_digests.py                       # each setting here and under qemu -cpu EPYC-Rome
    python experiments/cross_cpu_digests.py --emulate Haswell-v4 --out FILE.json
    python experiments/cross_cpu_digests.py --train-args="--num-seeds 16"   # a longer run (qemu is ~20x slower)

Each setting (environment variables for `python -m pgjax.train`) trains the same
small run twice in fresh processes: once on this machine's CPU and once under
`qemu-x86_64 -cpu MODEL` (Debian's `qemu-user`), which runs the same binaries but
answers CPUID as MODEL does: with EPYC-Rome, a CPU whose newest set is AVX2 and
that has no AVX-512. XLA and the libraries it calls (XNNPACK, YNNPACK, Eigen) read
CPUID to choose their code, so they choose as they would on such a machine, while
qemu computes each instruction's IEEE result exactly. The table says, per
setting, whether the two metrics.npz digests are equal. With jax/jaxlib 0.10.2
on an AVX-512 machine none agreed with the AVX2 models (experiments/results/
cross_cpu_digests.md); docs/devices.md says what else was tried and how the
emulation was checked against a real AVX2 machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from digests import metrics_digest  # noqa: E402

PLATFORM_MATH_OFF = "--xla_cpu_enable_platform_dependent_math=false"
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type=-individual_dot,-reduce"  # dots and reductions in XLA's own code
# name -> environment variables added for the run
SETTINGS = {
    "unset": {},
    "PGJAX_CPU_MAX_ISA=AVX2": {"PGJAX_CPU_MAX_ISA": "AVX2"},
    "platform-dependent math off": {"XLA_FLAGS": PLATFORM_MATH_OFF},
    "AVX2 + platform-dependent math off": {"PGJAX_CPU_MAX_ISA": "AVX2", "XLA_FLAGS": PLATFORM_MATH_OFF},
    "YNNPACK off": {"XLA_FLAGS": YNN_OFF},
    "AVX2 + YNNPACK off": {"PGJAX_CPU_MAX_ISA": "AVX2", "XLA_FLAGS": YNN_OFF},
    "AVX2 + YNNPACK off + platform-dependent math off": {"PGJAX_CPU_MAX_ISA": "AVX2",
                                                         "XLA_FLAGS": f"{YNN_OFF} {PLATFORM_MATH_OFF}"},
}
SMALL_RUN = "--num-seeds 2 --num-updates 10"


def train(folder: Path, env: dict, train_args: list[str], emulate: str | None) -> dict:
    """One `python -m pgjax.train` in a fresh process, natively or under qemu; its digest and wall time."""
    command = [sys.executable, "-m", "pgjax.train", "--quiet", "--compile-cache", "off", "--out", str(folder),
               *train_args]
    if emulate:
        command = ["qemu-x86_64", "-cpu", emulate, *command]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **env})
    summary = json.loads((folder / "summary.json").read_text())
    return {"metrics.npz": metrics_digest(folder / "metrics.npz"), "wall_s": round(time.perf_counter() - start, 1),
            "env_steps_total": summary["env_steps_total"],
            "float_determinants": summary.get("float_determinants")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulate", default="EPYC-Rome", help="qemu CPU model (qemu-x86_64 -cpu help lists them)")
    parser.add_argument("--settings", nargs="*", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--train-args", default=SMALL_RUN, help=f"arguments of pgjax.train (default {SMALL_RUN!r})")
    parser.add_argument("--out", type=Path, help="JSON file to write the table to")
    args = parser.parse_args()
    if shutil.which("qemu-x86_64") is None:
        parser.exit(2, "cross_cpu_digests: qemu-x86_64 is not installed; install Debian's qemu-user package\n")
    train_args = shlex.split(args.train_args)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, name in enumerate(args.settings):
            env = SETTINGS[name]
            native = train(Path(scratch) / f"{number}-native", env, train_args, None)
            emulated = train(Path(scratch) / f"{number}-emulated", env, train_args, args.emulate)
            rows.append({"setting": name, "env": env, "native": native, "emulated": emulated,
                         "equal": native["metrics.npz"] == emulated["metrics.npz"]})
            print(f"{name:36s} here {native['metrics.npz'][:8]} ({native['env_steps_total']:,} env steps)  "
                  f"{args.emulate} {emulated['metrics.npz'][:8]} ({emulated['env_steps_total']:,})  "
                  f"{'EQUAL' if rows[-1]['equal'] else 'differ'}", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"emulate": args.emulate, "train_args": train_args, "rows": rows},
                                       indent=2) + "\n")


if __name__ == "__main__":
    main()
