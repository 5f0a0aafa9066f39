"""rliable's figures on fixed data, kept as the fixture tests/test_comparison.py checks pgjax against.

rliable is not a pgjax dependency (its 1.2.0 pins arch<8, and arch 7 fails at import
under pandas 3), so this script runs in a throwaway environment outside the repo,
and imports nothing of pgjax:

    python3 -m venv /tmp/rliable-venv
    /tmp/rliable-venv/bin/pip install rliable "pandas<3"
    /tmp/rliable-venv/bin/python experiments/rliable_reference.py   # -> tests/data/rliable_reference.json

With --run-dir it instead prints rliable's P(group > baseline) and its interval for every
group of a run folder (from its summary.json, diverged runs left out), to set beside
`python -m pgjax.compare DIR --baseline G`; nothing is written:

    /tmp/rliable-venv/bin/python experiments/rliable_reference.py --run-dir runs/DIR --baseline 1

It was run with rliable 1.2.0, arch 7.2.0, pandas 2.3.3, numpy 2.4.6, scipy 1.17.1
(Python 3.11); the fixture records the versions it was made with. The data are drawn
here from fixed seeds and stored in the fixture beside rliable's results, so the test
reads the very same numbers.

Cases:
* "probability_of_improvement": two single-task groups of 10 runs (rounded, so that
  some runs tie), X against Y and Y against X, and X against itself; rliable's
  `metrics.probability_of_improvement` with `library.get_interval_estimates`
  (StratifiedIndependentBootstrap, percentile, 95%).
* "aggregate": normalised scores of 10 runs x 3 tasks; rliable's `aggregate_iqm` and
  `aggregate_optimality_gap` with `get_interval_estimates` (StratifiedBootstrap).
* "performance_profile": one group's 10 runs on one task; `create_performance_profile`
  over an 11-point tau grid.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
from pathlib import Path

import numpy as np
from rliable import library, metrics

REPS = 50_000  # rliable's default for get_interval_estimates
PROFILE_REPS = 20_000
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "rliable_reference.json"


def interval(point, ci) -> dict:
    ci = np.asarray(ci, np.float64)
    return {"point": np.squeeze(point).tolist(), "low": np.squeeze(ci[0]).tolist(), "high": np.squeeze(ci[1]).tolist()}


def run_dir_improvements(run_dir: Path, baseline: int) -> None:
    """Print rliable's P(group > baseline) with its 95% interval for every other group of a run folder."""
    summary = json.loads((run_dir / "summary.json").read_text())
    finals = {g["index"]: np.array([summary["runs"][i]["final_return"] for i in g["runs"]
                                    if not summary["runs"][i]["diverged"]]) for g in summary["groups"]}
    pairs = {str(g): (finals[g][:, None], finals[baseline][:, None]) for g in finals if g != baseline}
    np.random.seed(0)
    points, cis = library.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=REPS)
    for key in pairs:
        low, high = np.squeeze(cis[key]).tolist()
        print(f"group {key} vs {baseline}: P(improvement) {float(points[key]):.3f} [{low:.3f}, {high:.3f}] "
              f"(rliable {importlib.metadata.version('rliable')}, {REPS} resamples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, help="print rliable's P(improvement) for this run folder instead")
    parser.add_argument("--baseline", type=int, default=0, help="baseline group index for --run-dir")
    args = parser.parse_args()
    if args.run_dir is not None:
        run_dir_improvements(args.run_dir, args.baseline)
        return
    rng = np.random.default_rng(2021)
    x = np.round(rng.normal(400, 60, 10) / 10) * 10  # CartPole-like final returns on a coarse grid: ties
    y = np.round(rng.normal(360, 80, 10) / 10) * 10
    np.random.seed(0)  # rliable's bootstraps draw from NumPy's global generator
    pairs = {"x_vs_y": (x[:, None], y[:, None]), "y_vs_x": (y[:, None], x[:, None]), "x_vs_x": (x[:, None], x[:, None])}
    points, cis = library.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=REPS,
                                                 random_state=np.random.RandomState(0))
    improvement = {key: interval(points[key], cis[key]) for key in pairs}

    scores = rng.normal([0.9, 0.6, 1.1], [0.3, 0.25, 0.2], (10, 3))  # normalised: 10 runs x 3 tasks
    np.random.seed(1)
    aggregate_fn = lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_optimality_gap(s)])
    points, cis = library.get_interval_estimates({"a": scores}, aggregate_fn, reps=REPS,
                                                 random_state=np.random.RandomState(1))
    aggregate = {"iqm": interval(points["a"][0], cis["a"][:, 0]),
                 "optimality_gap": interval(points["a"][1], cis["a"][:, 1])}

    tau = np.linspace(250, 500, 11)
    np.random.seed(2)
    profiles, profile_cis = library.create_performance_profile({"x": x[:, None]}, tau, reps=PROFILE_REPS)
    profile = {"tau": tau.tolist(), **interval(profiles["x"], profile_cis["x"])}

    versions = {name: importlib.metadata.version(name) for name in ("rliable", "arch", "pandas", "numpy", "scipy")}
    data = {
        "made_by": "experiments/rliable_reference.py",
        "versions": {"python": platform.python_version(), **versions},
        "confidence": 0.95,
        "method": "percentile",
        "data": {"x": x.tolist(), "y": y.tolist(), "scores": scores.tolist()},
        "probability_of_improvement": {"reps": REPS, **improvement},
        "aggregate": {"reps": REPS, **aggregate},
        "performance_profile": {"reps": PROFILE_REPS, **profile},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({k: data[k] for k in ("versions", "probability_of_improvement", "aggregate")}, indent=1))


if __name__ == "__main__":
    main()
