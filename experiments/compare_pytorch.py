"""Compare pgjax with the two PyTorch tutorials it reproduces, on the same machine.

    pip install -e '.[compare]'                  # torch and gymnasium
    python experiments/compare_pytorch.py        # 2000 episodes, 3 PyTorch seeds, 64 pgjax seeds

What runs, in one invocation:

1. Faithful PyTorch versions of the two tutorials on Gymnasium's `CartPole-v1`,
   one seed after another (seeds 0..n-1), exactly as a reader of the tutorials
   would run them: one episode, one Adam update, repeat.
   * tutorial 000, "Policy Gradient - a quick introduction": 4-32-2 ReLU MLP with
     softmax, Adam lr 0.01, loss = -mean_t(log pi(a_t|s_t)) * (sum_t r_t - 15).
   * tutorial 001, "Deriving policy gradients and implementing REINFORCE":
     4-128-2 ReLU MLP with softmax, Adam lr 3e-4, gamma 0.9, discounted
     reward-to-go standardised within the episode (torch's std, ddof=1),
     loss = sum_t -log pi(a_t|s_t) * G_t.
   The printed listing of tutorial 001 has bugs (`probs.detach().numpy` is not
   called; the `if done:` block sits outside the step loop); the algorithm is
   reproduced, not the bugs. An episode ends at termination or truncation
   (CartPole-v1's 500-step limit). Nothing is rendered.
2. pgjax's presets `seed-a` and `seed-b` (the same two algorithms) for the same
   number of episodes with many seeds at once, and its `default` preset with its
   default budget, each as `python -m pgjax.train` in a subprocess, the way
   users run it (it spreads the seeds over every CPU core).

It prints a Markdown table and writes the same results as JSON to `--out`.

Env steps per second: for PyTorch, all env steps of a seed divided by the wall
time of its whole training loop (acting, stepping and updating); for pgjax,
`env_steps_per_second` from its summary (env steps / time of the compiled
training call, compile excluded), with the rate over the whole command
(process start, compile and writing results included) shown beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "experiments" / "results" / "compare_pytorch.json"
FINAL_WINDOW = 100  # episodes in the final-return mean, as in pgjax's summary
ENV_ID = "CartPole-v1"
WARMUP_EPISODES = 5  # untimed PyTorch episodes before the measured runs


def _require_extras() -> tuple[Any, Any]:
    """Import torch and gymnasium, or exit with the install command that brings them."""
    try:
        import gymnasium
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        sys.exit(
            f"compare_pytorch.py needs PyTorch and Gymnasium ({exc.name} is missing): "
            "pip install -e '.[compare]'"
        )
    return torch, gymnasium


torch, gym = _require_extras()
nn = torch.nn
F = torch.nn.functional
optim = torch.optim


# --------------------------------------------------------------------------------------
# Tutorial 000: "Policy Gradient - a quick introduction"
# --------------------------------------------------------------------------------------


class Policy000(nn.Module):
    """Tutorial 000's policy: state -> 32 ReLU units -> action probabilities."""

    def __init__(self, state_size: int, action_size: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(state_size, 32)
        self.fc2 = nn.Linear(32, action_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x))
        x = self.fc2(x)
        return torch.softmax(x, dim=-1)


def update_policy_000(rewards: list[float], log_probs: list[torch.Tensor], optimizer: optim.Optimizer) -> None:
    """Tutorial 000's update: the episode's mean log-probability times (return - 15)."""
    log_probs_t = torch.stack(log_probs)
    loss = -torch.mean(log_probs_t) * (sum(rewards) - 15)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def tutorial_000(env: Any, num_episodes: int) -> list[float]:
    """Train tutorial 000's agent for `num_episodes` episodes; returns each episode's return.

    The caller seeds torch, numpy and the env's first reset.
    """
    policy = Policy000(env.observation_space.shape[0], env.action_space.n)
    optimizer = optim.Adam(policy.parameters(), lr=0.01)
    episode_returns = []
    for _ in range(num_episodes):
        state, _ = env.reset()
        done = False
        score = 0.0
        log_probs: list[torch.Tensor] = []
        rewards: list[float] = []
        while not done:
            # Select action
            state = torch.tensor(state, dtype=torch.float32).reshape(1, -1)
            probs = policy(state)
            action = torch.multinomial(probs, 1).item()
            log_prob = torch.log(probs[:, action])
            # Take step (the tutorial's `done` ignored truncation; the 500-step limit ends episodes here)
            next_state, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            score += reward
            rewards.append(reward)
            log_probs.append(log_prob)
            state = next_state
        # Update policy (the tutorial printed the score here)
        update_policy_000(rewards, log_probs, optimizer)
        episode_returns.append(score)
    return episode_returns


# --------------------------------------------------------------------------------------
# Tutorial 001: "Deriving policy gradients and implementing REINFORCE"
# --------------------------------------------------------------------------------------

GAMMA_001 = 0.9


class PolicyNetwork001(nn.Module):
    """Tutorial 001's policy: state -> `hidden_size` ReLU units -> probabilities, with its Adam."""

    def __init__(self, num_inputs: int, num_actions: int, hidden_size: int, learning_rate: float = 3e-4) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.linear1 = nn.Linear(num_inputs, hidden_size)
        self.linear2 = nn.Linear(hidden_size, num_actions)
        self.optimizer = optim.Adam(self.parameters(), lr=learning_rate)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.linear1(state))
        x = F.softmax(self.linear2(x), dim=1)
        return x

    def get_action(self, state: np.ndarray) -> tuple[int, torch.Tensor]:
        """Sample an action with NumPy from the policy's probabilities; also its log-probability."""
        state_t = torch.from_numpy(state).float().unsqueeze(0)
        probs = self.forward(state_t)
        highest_prob_action = np.random.choice(self.num_actions, p=np.squeeze(probs.detach().numpy()))
        log_prob = torch.log(probs.squeeze(0)[highest_prob_action])
        return int(highest_prob_action), log_prob


def update_policy_001(policy_network: PolicyNetwork001, rewards: list[float], log_probs: list[torch.Tensor]) -> None:
    """Tutorial 001's update: standardised discounted reward-to-go, summed -log pi * G_t.

    The reward-to-go is computed with the tutorial's own quadratic double loop.
    """
    discounted_rewards = []
    for t in range(len(rewards)):
        Gt = 0.0
        pw = 0
        for r in rewards[t:]:
            Gt = Gt + GAMMA_001**pw * r
            pw = pw + 1
        discounted_rewards.append(Gt)

    discounted_rewards_t = torch.tensor(discounted_rewards)
    discounted_rewards_t = (discounted_rewards_t - discounted_rewards_t.mean()) / (discounted_rewards_t.std())

    policy_gradient = []
    for log_prob, Gt in zip(log_probs, discounted_rewards_t):
        policy_gradient.append(-log_prob * Gt)

    policy_network.optimizer.zero_grad()
    loss = torch.stack(policy_gradient).sum()
    loss.backward()
    policy_network.optimizer.step()


def tutorial_001(env: Any, num_episodes: int, max_steps: int = 10000) -> list[float]:
    """Train tutorial 001's agent for `num_episodes` episodes; returns each episode's return.

    The caller seeds torch, numpy and the env's first reset.
    """
    policy_net = PolicyNetwork001(env.observation_space.shape[0], env.action_space.n, 128)
    all_rewards = []
    for _ in range(num_episodes):
        state, _ = env.reset()
        log_probs: list[torch.Tensor] = []
        rewards: list[float] = []
        for _step in range(max_steps):
            action, log_prob = policy_net.get_action(state)
            new_state, reward, terminated, truncated, _ = env.step(action)
            log_probs.append(log_prob)
            rewards.append(reward)
            if terminated or truncated:
                update_policy_001(policy_net, rewards, log_probs)
                all_rewards.append(float(np.sum(rewards)))
                break
            state = new_state
    return all_rewards


# --------------------------------------------------------------------------------------
# Running and measuring
# --------------------------------------------------------------------------------------

TUTORIALS: dict[str, tuple[str, Callable[[Any, int], list[float]]]] = {
    "000": ("seed-a", tutorial_000),
    "001": ("seed-b", tutorial_001),
}
ALGORITHMS = {
    "000": "tutorial 000: 4-32-2, Adam 0.01, (return - 15) x mean log pi",
    "001": "tutorial 001: 4-128-2, Adam 3e-4, gamma 0.9, normalised reward-to-go",
}


def describe_default(hp: dict[str, Any]) -> str:
    """pgjax's default preset in the words of the table, from the hyperparameters it ran with."""
    layers = "-".join(str(n) for n in (4, *hp["hidden"], 2))
    names = {"batch_norm": "batch-normalised", "episode_norm": "episode-normalised"}
    baseline = names.get(hp["baseline"], hp["baseline"])
    return (f"pgjax default: {layers}, Adam {hp['learning_rate']:g}, {hp['episodes_per_update']} episodes/update, "
            f"{baseline} {hp['returns'].replace('_', '-')} returns")


@dataclasses.dataclass
class TorchRun:
    """One PyTorch seed: its returns and how long its training loop took."""

    seed: int
    episodes: int
    env_steps: int
    seconds: float
    final_return: float

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / self.seconds


def run_torch(tutorial: str, seed: int, num_episodes: int) -> TorchRun:
    """Seed torch, numpy and the environment, then time one tutorial's whole training loop."""
    _, train = TUTORIALS[tutorial]
    torch.manual_seed(seed)
    np.random.seed(seed)
    env = gym.make(ENV_ID)
    env.reset(seed=seed)  # seeds the env's RNG; later resets continue from it
    start = time.perf_counter()
    returns = train(env, num_episodes)
    seconds = time.perf_counter() - start
    env.close()
    return TorchRun(  # CartPole pays 1 per step, so a return is also the episode's length
        seed=seed, episodes=len(returns), env_steps=int(sum(returns)), seconds=seconds,
        final_return=float(np.mean(returns[-FINAL_WINDOW:])),
    )


def run_pgjax(preset: str, num_seeds: int, num_episodes: int | None) -> dict[str, Any]:
    """Run `python -m pgjax.train` in a subprocess; its summary.json plus the command's wall time."""
    with tempfile.TemporaryDirectory(prefix="pgjax_compare_") as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "pgjax.train", "--preset", preset,
                   "--num-seeds", str(num_seeds), "--seed", "0", "--out", str(out)]
        if num_episodes is not None:
            command += ["--num-episodes", str(num_episodes)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        command_seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed with exit code {proc.returncode}:\n{proc.stderr[-4000:]}"
            )
        summary = json.loads((out / "summary.json").read_text())
    hyperparameters = [run.pop("hyperparameters", None) for run in summary["runs"]]
    summary["hyperparameters"] = hyperparameters[0]  # the same for every run of a preset
    summary["command"] = " ".join(["python", *command[1:]]).replace(str(out), "DIR")
    summary["command_seconds"] = command_seconds
    return summary


def machine_info() -> dict[str, Any]:
    """CPU model, core counts and package versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__, "gymnasium": gym.__version__}
    for package in ("jax", "jaxlib", "gymnax", "numpy"):
        versions[package] = importlib.metadata.version(package)
    try:
        versions["pgjax"] = importlib.metadata.version("pgjax")
    except importlib.metadata.PackageNotFoundError:
        sys.path.insert(0, str(REPO_ROOT))
        import pgjax  # noqa: E402  (not installed: read the checkout's version)

        versions["pgjax"] = getattr(pgjax, "__version__", "unknown") + " (checkout)"
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "versions": versions,
    }


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _returns_cell(finals: list[float]) -> str:
    return f"{np.mean(finals):.1f} ({min(finals):.1f}–{max(finals):.1f})"


def _times(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2g}x" if x < 10 else f"{x:,.0f}x"


def _seconds(s: float) -> str:
    return f"{s:,.0f} s" if s >= 100 else f"{s:.1f} s"


def build_rows(torch_results: dict[str, list[TorchRun]], pgjax_results: dict[str, dict], num_episodes: int,
               pgjax_seeds: int) -> list[dict[str, Any]]:
    """One row per implementation x algorithm, in the order of the table."""
    rows: list[dict[str, Any]] = []
    for tutorial, (preset, _) in TUTORIALS.items():
        runs = torch_results[tutorial]
        steps, seconds = sum(r.env_steps for r in runs), sum(r.seconds for r in runs)
        per_seed = seconds / len(runs)
        torch_rate = steps / seconds
        rows.append({
            "implementation": f"PyTorch {torch.__version__} (tutorial code, 1 process)",
            "algorithm": ALGORITHMS[tutorial], "tutorial": tutorial, "seeds": len(runs),
            "episodes_per_seed": num_episodes, "final_returns": [r.final_return for r in runs],
            "env_steps_total": steps, "env_steps_per_second": torch_rate,
            "measured_seconds": seconds, "seconds_per_seed": per_seed,
            "extrapolated_seconds_for_pgjax_seeds": per_seed * pgjax_seeds,
            "runs": [dataclasses.asdict(r) | {"steps_per_second": r.steps_per_second} for r in runs],
        })
        summary = pgjax_results[preset]
        rows.append(_pgjax_row(preset, summary, ALGORITHMS[tutorial], num_episodes, torch_rate, per_seed))
    summary = pgjax_results["default"]
    episodes = summary["runs"][0]["episodes"]
    rows.append(_pgjax_row("default", summary, describe_default(summary["hyperparameters"]), episodes, None, None))
    return rows


def _pgjax_row(preset: str, summary: dict, algorithm: str, episodes: int, torch_rate: float | None,
               torch_seconds_per_seed: float | None) -> dict[str, Any]:
    n = summary["num_runs"]
    row = {
        "implementation": f"pgjax preset {preset}",
        "algorithm": algorithm, "preset": preset, "seeds": n, "episodes_per_seed": episodes,
        "final_returns": [r["final_return"] for r in summary["runs"]],
        "env_steps_total": summary["env_steps_total"],
        "env_steps_per_second": summary["env_steps_per_second"],
        "env_steps_per_second_whole_command": summary["env_steps_total"] / summary["command_seconds"],
        "command_seconds": summary["command_seconds"],
        "speedup_env_steps_per_second": None if torch_rate is None else summary["env_steps_per_second"] / torch_rate,
        "speedup_wall_time": None if torch_seconds_per_seed is None
        else torch_seconds_per_seed * n / summary["command_seconds"],
        "pgjax_summary": summary,
    }
    return row


def markdown_table(rows: list[dict[str, Any]], machine: dict[str, Any], num_episodes: int) -> str:
    """The results as a Markdown table with the machine and versions under it."""
    header = ("| implementation | algorithm | seeds | episodes per seed | final return, mean (min–max over seeds) "
              "| env steps/s | wall time for the many-seed result | speedup in env steps/s "
              "| speedup in wall time |")
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        rate = f"{row['env_steps_per_second']:,.0f}"
        if "command_seconds" in row:
            rate += f" ({row['env_steps_per_second_whole_command']:,.0f} over the whole command)"
            s = row["pgjax_summary"]
            wall = (f"{_seconds(row['command_seconds'])} for {row['seeds']} seeds, measured (whole command; "
                    f"compile {s['compile_seconds']:.1f} s, train {s['train_seconds']:.1f} s)")
            speedup, speedup_wall = _times(row["speedup_env_steps_per_second"]), _times(row["speedup_wall_time"])
        else:
            n = rows[rows.index(row) + 1]["seeds"]
            wall = (f"{_seconds(row['extrapolated_seconds_for_pgjax_seeds'])} extrapolated: time for {n} seeds "
                    f"sequentially ({_seconds(row['seconds_per_seed'])}/seed; measured "
                    f"{_seconds(row['measured_seconds'])} for the {row['seeds']} seeds run)")
            speedup, speedup_wall = "1x (reference)", "1x (reference)"
        lines.append(
            f"| {row['implementation']} | {row['algorithm']} | {row['seeds']} | {row['episodes_per_seed']:,} "
            f"| {_returns_cell(row['final_returns'])} | {rate} | {wall} | {speedup} | {speedup_wall} |"
        )
    v = machine["versions"]
    lines += [
        "",
        f"Machine: {machine['cpu']}, {machine['usable_cores']} cores usable ({machine['logical_cores']} logical), "
        f"torch threads {machine['torch_threads']}; {machine['platform']}.",
        f"Versions: Python {v['python']}, torch {v['torch']}, gymnasium {v['gymnasium']}, jax {v['jax']} "
        f"(jaxlib {v['jaxlib']}), gymnax {v['gymnax']}, pgjax {v['pgjax']}, numpy {v['numpy']}.",
        f"pgjax devices: {rows[1]['pgjax_summary']['devices']} x {rows[1]['pgjax_summary']['device_kind']}.",
        "",
        f"Final return: mean return of the last {FINAL_WINDOW} training episodes of a seed. "
        "PyTorch env steps/s: all env steps / wall time of the training loops (acting, env steps, updates), "
        f"after {WARMUP_EPISODES} untimed warm-up episodes per tutorial. "
        "pgjax env steps/s: env steps / time of the compiled training call (compile excluded); "
        "in brackets, over the whole `python -m pgjax.train` command. "
        "Speedup in wall time: the PyTorch tutorial's extrapolated time for pgjax's number of seeds run "
        "one after another / pgjax's whole command. The default preset runs a different algorithm "
        f"with its own budget, so it has no PyTorch reference. Episodes per seed for the tutorials: {num_episodes:,}.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        "--episodes", type=int, default=2000, help="training episodes per seed (tutorials and seed-a/b)"
    )
    parser.add_argument("--torch-seeds", type=int, default=3, help="PyTorch seeds 0..n-1, run one after another")
    parser.add_argument("--pgjax-seeds", type=int, default=64, help="pgjax seeds 0..n-1, trained together")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)
    for name in ("episodes", "torch_seeds", "pgjax_seeds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def _jsonable(value: Any) -> Any:
    """`value` with non-finite floats as strings ("inf", "nan"), so that the file is strict JSON."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def log(message: str) -> None:
    """Progress to stderr, so that stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    script_start = time.perf_counter()
    machine = machine_info()

    for tutorial in TUTORIALS:  # untimed warm-up: torch's first calls set up kernels and allocators
        run_torch(tutorial, seed=0, num_episodes=WARMUP_EPISODES)

    torch_results: dict[str, list[TorchRun]] = {}
    for tutorial in TUTORIALS:
        torch_results[tutorial] = []
        for seed in range(args.torch_seeds):
            run = run_torch(tutorial, seed, args.episodes)
            torch_results[tutorial].append(run)
            log(f"PyTorch tutorial {tutorial} seed {seed}: final return {run.final_return:.1f}, "
                f"{run.env_steps:,} env steps in {run.seconds:.1f} s = {run.steps_per_second:,.0f} steps/s")

    pgjax_results: dict[str, dict] = {}
    for preset, episodes in (("seed-a", args.episodes), ("seed-b", args.episodes), ("default", None)):
        summary = run_pgjax(preset, args.pgjax_seeds, episodes)
        pgjax_results[preset] = summary
        log(f"pgjax {preset}: {summary['num_runs']} seeds, final return {summary['final_return_mean']:.1f}, "
            f"{summary['env_steps_total']:,} env steps, {summary['env_steps_per_second']:,.0f} steps/s "
            f"(train), command {summary['command_seconds']:.1f} s")

    rows = build_rows(torch_results, pgjax_results, args.episodes, args.pgjax_seeds)
    table = markdown_table(rows, machine, args.episodes)
    script_seconds = time.perf_counter() - script_start
    print(table)
    print(f"\nWhole comparison: {script_seconds:,.0f} s.")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine, "script_seconds": script_seconds, "rows": rows, "table_markdown": table,
    }
    args.out.write_text(json.dumps(_jsonable(result), indent=2, allow_nan=False) + "\n")
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
