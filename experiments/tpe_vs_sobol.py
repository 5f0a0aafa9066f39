"""--sampler tpe against --sampler sobol at equal budgets: as many points, the same seeds and updates, two
environments, three sampler seeds each; each winner confirmed on 16 fresh seeds.

    python experiments/tpe_vs_sobol.py [--out experiments/results/tpe_vs_sobol]
    python experiments/tpe_vs_sobol.py --num-samples 128 --out experiments/results/tpe_vs_sobol_128

Each search is one `python -m pgjax.train` command: `--lr 1e-4:1e-1:log --entropy-coef 0:0.02 --num-samples N
--num-seeds 8` (N: --num-samples, 32 by default), its winner (the tuning seeds' best) and the preset's own
settings trained again on seeds 8-23 (`--confirm-seeds 16 --confirm-top 1`). Both samplers train N x 8 runs of
the same updates, so they use the same episodes; their env steps differ with the episodes' lengths and are
recorded. The samplers alternate, sobol first, on one compile cache. Records per search the winner's tuning IQM,
its confirmed IQM with its interval, P(improvement) over the preset on the fresh seeds, the median over the N
points of their tuning IQM (where the search spent its runs), env steps and seconds; writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEARCH = ["--lr", "1e-4:1e-1:log", "--entropy-coef", "0:0.02", "--num-seeds", "8", "--confirm-seeds", "16",
          "--confirm-top", "1", "--quiet"]
ENVS = {"CartPole-v1": ["--num-updates", "25"], "Acrobot-v1": ["--num-updates", "50"]}
SAMPLERS = ("sobol", "tpe")
REPEATS = (0, 1, 2)


def search(env: str, sampler: str, repeat: int, num_samples: int, out: Path, cache: Path) -> dict:
    """One search's command and what its summary.json says of the winner."""
    args = ["--env", env, *ENVS[env], *SEARCH, "--num-samples", str(num_samples), "--sampler", sampler,
            "--sampler-seed", str(repeat)]
    command = [sys.executable, "-m", "pgjax.train", *args, "--out", str(out), "--compile-cache", str(cache)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    summary = json.loads((out / "summary.json").read_text())
    winner = summary["confirmation"]["winner"]
    return {"env": env, "sampler": sampler, "sampler_seed": repeat, "num_samples": num_samples,
            "command": ["python", "-m", "pgjax.train", *args],
            "wall_seconds": round(time.perf_counter() - start, 1), "train_seconds": summary["train_seconds"],
            "env_steps": summary["env_steps_total"], "device_kind": summary["device_kind"],
            "median_point_iqm": statistics.median(g["statistics"]["iqm"] for g in summary["groups"]),
            "tuning_iqm": winner["tuning_iqm"], "confirmed_iqm": winner["iqm"],
            "confirmed_iqm_ci95": winner["iqm_ci95"],
            "probability_of_improvement": winner.get("probability_of_improvement"),
            "winner_settings": summary["confirmation"]["configurations"][0]["varied"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/results/tpe_vs_sobol"))
    parser.add_argument("--num-samples", type=int, default=32, help="points of each search")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    args = parser.parse_args()
    results = {"machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
               "searches": []}
    with tempfile.TemporaryDirectory() as scratch:
        for env in args.envs:
            for repeat in REPEATS:
                for sampler in SAMPLERS:
                    out = Path(scratch) / f"{env}-{sampler}-{repeat}"
                    record = search(env, sampler, repeat, args.num_samples, out, Path(scratch) / "cache")
                    results["searches"].append(record)
                    print({k: v for k, v in record.items() if k != "command"}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(table(results))
    print(table(results))


def table(results: dict) -> str:
    machine, searches = results["machine"], results["searches"]
    lines = [f"Machine: {machine['cpus']} CPUs ({machine['processor']}), device {searches[0]['device_kind']}. "
             "Per search: the winner's IQM of the final return on its 8 tuning seeds, and confirmed on 16 fresh "
             "seeds (95% bootstrap CI); P(> preset): its paired probability of improvement over the preset's "
             "settings on those seeds; median point IQM: the median over the "
             f"{searches[0].get('num_samples', 32)} points of their tuning IQM.", "",
             "| env | sampler | sampler seed | median point IQM | tuning IQM | confirmed IQM [95% CI] | P(> preset) | "
             "env steps | train s | winner |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in searches:
        low, high = r["confirmed_iqm_ci95"]
        settings = ", ".join(f"{k}={v:.3g}" for k, v in r["winner_settings"].items())
        better = r["probability_of_improvement"]["probability"]
        lines.append(f"| {r['env']} | {r['sampler']} | {r['sampler_seed']} | {r['median_point_iqm']:.1f} | "
                     f"{r['tuning_iqm']:.1f} | "
                     f"{r['confirmed_iqm']:.1f} [{low:.1f}, {high:.1f}] | {better:.2f} | "
                     f"{r['env_steps']:,} | {r['train_seconds']:.1f} | {settings} |")
    lines += ["", "| env | sampler | mean confirmed IQM over the 3 sampler seeds | mean env steps |",
              "|---|---|---|---|"]
    for env in dict.fromkeys(r["env"] for r in searches):
        for sampler in SAMPLERS:
            mine = [r for r in searches if r["env"] == env and r["sampler"] == sampler]
            lines.append(f"| {env} | {sampler} | {statistics.mean(r['confirmed_iqm'] for r in mine):.1f} | "
                         f"{statistics.mean(r['env_steps'] for r in mine):,.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
