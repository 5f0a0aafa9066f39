"""MLP against GRU and LSTM policies on a memory task and on CartPole-v1: 16 seeds, the same budget.

    python experiments/recurrent_memory.py      # writes experiments/results/recurrent_memory.{json,md}

Each row is one `python -m pgjax.train` call (default preset, lr 0.01 on MemoryChain-bsuite as for every
environment without a preset); the IQM and its interval are the command's own (summary.json), steps/s its
training throughput on this machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from pgjax.running.devices import cpu_model

RESULTS = Path(__file__).parent / "results"
CASES = [("MemoryChain-bsuite", net, 200) for net in ("mlp", "gru", "lstm")] + \
        [("CartPole-v1", net, 100) for net in ("mlp", "gru")]


def main() -> None:
    rows = []
    for env, network, updates in CASES:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([sys.executable, "-m", "pgjax.train", "--env", env, "--network", network,
                            "--num-seeds", "16", "--num-updates", str(updates), "--out", out],
                           check=True, capture_output=True, timeout=1800)
            summary = json.loads((Path(out) / "summary.json").read_text())
        statistics = summary["groups"][0]["statistics"]
        rows.append({"env": env, "network": network, "updates": updates, "seeds": 16,
                     "iqm": statistics["iqm"], "iqm_ci": statistics["iqm_ci95"],
                     "steps_per_second": summary["env_steps_per_second"], "devices": summary["devices"],
                     "train_seconds": summary["train_seconds"]})
        print(rows[-1], flush=True)
    device = cpu_model()
    (RESULTS / "recurrent_memory.json").write_text(json.dumps({"device": device, "rows": rows}, indent=1))
    lines = [f"Device: {device}. 16 seeds, default preset; one `python -m pgjax.train` per row.", "",
             "| env | network | updates | IQM final return [95% CI] | steps/s |", "|---|---|---|---|---|"]
    for r in rows:
        ci = r["iqm_ci"]
        lines.append(f"| {r['env']} | {r['network']} | {r['updates']} | {r['iqm']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] "
                     f"| {r['steps_per_second']:,.0f} ({r['devices']} CPU device{'s' * (r['devices'] > 1)}) |")
    (RESULTS / "recurrent_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
