"""`--distributed` over 2 local processes (1 CPU device each, gloo on loopback): they train like one process,
and a run stopped by Ctrl-C, by a process killed or by both killed resumes, as the printed command says, to the
uninterrupted run's results, bitwise. Each process is `tests/late_process.py`: process 1 looks for the chunks'
checkpoints two seconds late, after process 0 has made (or, resuming, cleaned) them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pgjax.commands.train import main
from pgjax.running.run_folder import files, loading

LATE_PROCESS = Path(__file__).with_name("late_process.py")
# long enough to be stopped between its first checkpoint and its end (about 2 s of training on 2 cores)
ARGV = ["--num-seeds", "4", "--seed", "5", "--num-updates", "600", "--episodes-per-update", "2", "--hidden", "8",
        "--checkpoint-every", "20", "--quiet"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_env(index: int, port: int) -> dict[str, str]:
    return {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "PGJAX_NUM_PROCESSES": "2",
            "PGJAX_PROCESS_ID": str(index)}


def start(argv: list[str], envs: list[dict[str, str]]) -> list[subprocess.Popen]:
    """`python tests/late_process.py ARGV` in one process per environment, stdout and stderr apart."""
    return [subprocess.Popen([sys.executable, str(LATE_PROCESS), *argv], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for env in envs]


def finish(processes: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str, str]]:
    """Each process's (exit status, stdout, stderr), once every one has ended."""
    ended = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        ended.append((process.returncode, out, err))
    return ended


def shown(ended: list[tuple[int, str, str]]) -> str:
    """Every process's output, for a failed assertion (a process failing may be the other's cause)."""
    return "\n".join(f"process {i} (exit {code}):\n{out}\n{err}" for i, (code, out, err) in enumerate(ended))


def load_run(out: Path):
    return loading.load_summary(out), loading.load_metrics(out), loading.load_params(out)


def assert_same_runs(a, b) -> None:
    (a_summary, a_metrics, a_params), (b_summary, b_metrics, b_params) = a, b
    for name in a_metrics[0]:
        np.testing.assert_array_equal(a_metrics[0][name], b_metrics[0][name], err_msg=name)
    assert files.jsonable(a_params) == files.jsonable(b_params)
    assert [r["final_return"] for r in a_summary["runs"]] == [r["final_return"] for r in b_summary["runs"]]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted two-process run."""
    out = tmp_path_factory.mktemp("distributed") / "whole"
    port = free_port()
    ended = finish(start(["--distributed", *ARGV, "--out", str(out)], [process_env(i, port) for i in range(2)]))
    assert all(code == 0 for code, _, _ in ended), shown(ended)
    return out


def test_two_processes_with_jax_distributed_train_like_one_process(whole, tmp_path):
    """The two processes give the runs of one process with 2 devices, bitwise; process 0 writes the folder
    (before, process 1 opened one checkpoint folder more than process 0 when it looked late, and gloo failed
    "Received data size doesn't match expected size", in 1 of 20 runs on a loaded 2-core machine)."""
    assert main([*ARGV, "--out", str(tmp_path / "single")]) == 0
    multi = load_run(whole)
    assert multi[0]["devices"] == 2
    assert_same_runs(multi, load_run(tmp_path / "single"))


def wait_for_checkpoint(out: Path, processes: list[subprocess.Popen], timeout: float = 120) -> None:
    """Until chunk 0 has a complete checkpoint (or a process ended)."""
    folder = out / files.CHECKPOINT_DIR / "chunk-0000"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(p.poll() is None for p in processes):
        if folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir()):
            return
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint in {folder} after {timeout} s")


RESUME = re.compile(r"resume with: (.+? --distributed)")


@pytest.mark.parametrize("stop", ["ctrl-c both", "kill process 1", "kill process 0", "kill both"])
def test_a_stopped_distributed_run_resumes_to_the_uninterrupted_runs_results(stop, whole, tmp_path):
    """Stopped during training, then resumed in both processes by the command a process printed (with
    --distributed and the variables that name the processes): the uninterrupted run's results, bitwise. A
    process whose peer was killed ends in one line, exit status 1, and leaves the folder resumable."""
    out, port = tmp_path / "stopped", free_port()
    envs = [process_env(i, port) for i in range(2)]
    processes = start(["--distributed", *ARGV, "--out", str(out)], envs)
    wait_for_checkpoint(out, processes)
    if stop == "ctrl-c both":
        for process in processes:
            process.send_signal(signal.SIGINT)
    else:
        for index in {"kill process 1": [1], "kill process 0": [0], "kill both": [0, 1]}[stop]:
            processes[index].kill()
    ended = finish(processes)
    assert not (out / files.SUMMARY_FILE).exists(), shown(ended)
    printed = []
    for index, (code, text, err) in enumerate(ended):
        if code == -signal.SIGKILL:
            continue
        if stop == "ctrl-c both":
            assert code == 130 and err == "", shown(ended)
        else:  # the survivor: one line saying what happened and how to resume; no traceback, no stack dump
            # (pgjax's line, exit 1; or, where JAX's coordination client ended the process first, SIGABRT, the
            # line of its native-output watcher)
            assert code in (1, -signal.SIGABRT), shown(ended)
            assert len(err.strip().splitlines()) == 1 and re.match(
                r"error: (another process of this|JAX ended this process of the) --distributed run", err), shown(ended)
        printed += RESUME.findall(text + err)
        assert f"PGJAX_PROCESS_ID={index} " in printed[-1], shown(ended)
    assert printed or stop == "kill both"
    command = printed[0] if printed else f"JAX_COORDINATOR_ADDRESS=127.0.0.1:{port} PGJAX_NUM_PROCESSES=2 " \
                                         f"PGJAX_PROCESS_ID=0 python -m pgjax.train --resume {out} --distributed"
    # each process runs the printed command with its own PGJAX_PROCESS_ID (late_process.py is python -m pgjax.train)
    words = shlex.split(command)
    variables = dict(word.split("=", 1) for word in words if "=" in word and not word.startswith("-"))
    argv = words[words.index("pgjax.train") + 1:]
    assert variables["JAX_COORDINATOR_ADDRESS"] == f"127.0.0.1:{port}" and argv == ["--resume", str(out),
                                                                                     "--distributed"]
    if stop == "ctrl-c both":  # one process may resume a multi-process run too (its devices are the same)
        alone = tmp_path / "alone"
        shutil.copytree(out, alone)
        assert main(["--resume", str(alone), "--quiet"]) == 0
        assert_same_runs(load_run(alone), load_run(whole))
    resumed = finish(start([*argv, "--quiet"], [{**env, **variables, "PGJAX_PROCESS_ID": str(i)}
                                               for i, env in enumerate(envs)]))
    assert all(code == 0 for code, _, _ in resumed), shown(resumed)
    summary = loading.load_summary(out)
    assert 0 < summary["resumed_updates"] < 600
    assert_same_runs(load_run(out), load_run(whole))


def test_the_native_output_watcher_says_in_one_line_what_ended_the_process(tmp_path):
    """Native output goes to the log; JAX's fatal end of a process pgjax did not say becomes one line with the
    resume command pgjax told the watcher; nothing is printed once pgjax said the failure itself."""
    from pgjax.commands import native_output

    fatal = (b"[Gloo] Rank 1 is connected to 1 peer ranks\nF1207 client.h:80] Terminating process because the JAX "
             b"distributed service detected fatal errors. ...\n*** Check failure stack trace: ***\n    @ 0x7f\n")
    resume = native_output.RESUME + b"PGJAX_PROCESS_ID=1 python -m pgjax.train --resume runs/a --distributed\n"
    for given, says in [(resume + fatal, True), (fatal + native_output.SAID, False), (b"[Gloo] connected\n", False)]:
        log = tmp_path / "native.log"
        log.unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-m", "pgjax.commands.native_output", str(log)], input=given,
                              capture_output=True)
        assert done.returncode == 0 and done.stdout == b"" and log.read_bytes() == given
        lines = done.stderr.decode().splitlines()
        assert len(lines) == int(says)
        if says:
            assert lines[0].startswith("error: JAX ended this process of the --distributed run") and \
                "resume with: PGJAX_PROCESS_ID=1 python -m pgjax.train --resume runs/a --distributed" in lines[0] \
                and str(log) in lines[0]
