"""`python -m pgjax.train` against what goes wrong around training: a second writer, an edited or read-only
run folder, a double Ctrl-C, factories that misbehave, names too long, --distributed without a cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import filelock
import numpy as np
import pytest

from pgjax.commands.train import main
from pgjax.running.run_folder import checkpoints, files, loading
from pgjax.running.run_folder.files import CONFIG_FILE, SUMMARY_FILE
from pgjax.running.run_folder.lock import LOCK_FILE

REPO = Path(__file__).resolve().parents[1]
TINY = ["--num-updates", "2", "--num-seeds", "2", "--episodes-per-update", "1", "--hidden", "8", "--quiet"]


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def _same_results(a: Path, b: Path) -> None:
    for ma, mb in zip(loading.load_metrics(a), loading.load_metrics(b), strict=True):
        for name in ma:
            np.testing.assert_array_equal(ma[name], mb[name], err_msg=name)
    assert files.jsonable(loading.load_params(a)) == files.jsonable(loading.load_params(b))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("robust") / "done"
    assert main([*TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def resumable(finished, tmp_path) -> Path:
    """A copy of the finished run without its summary.json: a run that can be resumed (every chunk checkpointed)."""
    copy = tmp_path / "resumable"
    shutil.copytree(finished, copy)
    (copy / SUMMARY_FILE).unlink()
    return copy


def test_a_held_folder_is_refused_in_one_line_and_left_as_it_was(finished, resumable, tmp_path, capsys):
    held = filelock.FileLock(str(resumable / LOCK_FILE), timeout=0)
    held.acquire()
    try:
        before = _snapshot(resumable)
        assert main(["--resume", str(resumable)]) == 2
        assert f"{resumable} is in use by another pgjax process" in _one_line(capsys)
        assert main([*TINY, "--out", str(resumable), "--overwrite"]) == 2  # a fresh start into it: refused too
        assert "is in use by another pgjax process" in _one_line(capsys)
        assert _snapshot(resumable) == before
    finally:
        held.release()
    assert main(["--resume", str(resumable)]) == 0
    assert not (resumable / LOCK_FILE).exists()  # the hold ends with the command
    _same_results(resumable, finished)


def _edit(folder: Path, change) -> None:
    config = json.loads((folder / CONFIG_FILE).read_text())
    change(config)
    (folder / CONFIG_FILE).write_text(json.dumps(config))


@pytest.mark.parametrize("change, message", [
    (lambda c: c["run"].update(num_seeds=1), "plans 2 runs for group 0, and its grid and run.num_seeds make 1"),
    (lambda c: (c["run"].update(num_seeds=1), c["chunks"][0].update(num_runs=1)),
     "config.json does not match its checkpoints (chunk 0 has 2 runs, the plan 1); the folder was edited or damaged"),
    (lambda c: c.pop("grid"), "lacks grid"),
    (lambda c: c.pop("num_devices"), "lacks num_devices"),
    (lambda c: c["run"].update(speed=3), "unknown run option 'speed'"),
    (lambda c: c["run"].update(seed="0"), "run.seed = '0', which is not a valid --seed"),
    (lambda c: c["grid"][0]["config"]["static"].update(num_updates="2"), "static.num_updates = '2'"),
    (lambda c: c["chunks"][0].update(chunk_size="4"), "chunks[0] that is not"),
])
def test_an_edited_config_json_is_refused_before_training(resumable, change, message, capsys):
    _edit(resumable, change)
    before = _snapshot(resumable)
    assert main(["--resume", str(resumable)]) == 2
    err = _one_line(capsys)
    assert message in err and str(resumable) in err, err
    assert _snapshot(resumable) == before


def test_a_checkpoint_folder_outside_the_plan_is_refused(resumable, capsys):
    shutil.copytree(checkpoints.chunk_dir(resumable, 0), checkpoints.chunk_dir(resumable, 3))
    assert main(["--resume", str(resumable)]) == 2
    assert "(checkpoints/chunk-0003 belongs to no chunk of the plan, which has 1 chunk)" in _one_line(capsys)


def test_a_read_only_folder_is_refused_before_training(resumable, monkeypatch, capsys):
    if os.geteuid() == 0:  # the superuser writes whatever the mode says: let os.access tell the truth
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == resumable / "checkpoints"
                            else real_access(path, mode, **kw))
    os.chmod(resumable / "checkpoints", 0o555)
    try:
        before = _snapshot(resumable)
        assert main(["--resume", str(resumable)]) == 2
        assert f"{resumable / 'checkpoints'} is read-only" in _one_line(capsys)
        assert _snapshot(resumable) == before
    finally:
        os.chmod(resumable / "checkpoints", 0o755)


def test_resume_removes_only_the_leftovers_of_cut_short_saves(finished, resumable):
    chunk = checkpoints.chunk_dir(resumable, 0)
    (chunk / "1.orbax-checkpoint-tmp").mkdir()
    (chunk / "2.orbax-checkpoint-tmp-1712345678").mkdir()
    (resumable / "checkpoints" / "notes.txt").write_text("mine")
    assert main(["--resume", str(resumable)]) == 0
    assert sorted(p.name for p in chunk.iterdir()) == ["2"]
    assert (resumable / "checkpoints" / "notes.txt").read_text() == "mine"
    _same_results(resumable, finished)


def test_a_step_without_orbax_metadata_goes_only_where_a_complete_one_is_left(finished, resumable, tmp_path):
    chunk = checkpoints.chunk_dir(resumable, 0)
    assert (chunk / "2" / checkpoints.STEP_METADATA).is_file()
    cut_short = chunk / "3"  # renamed by orbax, the step's metadata not yet written
    shutil.copytree(chunk / "2", cut_short)
    (cut_short / checkpoints.STEP_METADATA).unlink()
    assert main(["--resume", str(resumable)]) == 0
    assert sorted(p.name for p in chunk.iterdir()) == ["2"]
    _same_results(resumable, finished)
    alone = tmp_path / "alone" / "checkpoints" / "chunk-0000" / "7"  # no complete step beside it: it stays
    alone.mkdir(parents=True)
    assert checkpoints.remove_incomplete_saves(tmp_path / "alone") == [] and alone.is_dir()


def test_a_save_cut_short_by_a_second_ctrl_c_ends_in_one_line(monkeypatch, tmp_path, capsys):
    """Orbax, closed while a KeyboardInterrupt unwinds a save, raises RuntimeError: still the abort line."""
    def interrupted_save(self, *args, **kwargs):
        raise KeyboardInterrupt

    def broken_close(self):
        raise RuntimeError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(checkpoints.ChunkCheckpoints, "save", interrupted_save)
    monkeypatch.setattr(checkpoints.ChunkCheckpoints, "close", broken_close)
    assert main([*TINY, "--out", str(tmp_path / "cut")]) == 128 + signal.SIGINT
    err = capsys.readouterr().err.strip()
    assert err.startswith("aborted at once: the current segment is lost") and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("flags, message", [
    (["--network", "os:getcwd"], "failed: TypeError: posix.getcwd() takes no arguments"),
    (["--network", "tests.broken:failing_network"], "failing_network' failed: RuntimeError"),
    (["--network", "tests.broken:exiting_network"], "exiting_network' failed: it ended the process (sys.exit(4))"),
    (["--network", "tests.broken:not_a_module"], "returned an object of type int, not a flax.linen.Module"),
    (["--env", "tests.broken:exiting_env"], "'tests.broken:exiting_env' failed: it ended the process (sys.exit(3))"),
    (["--env", "tests.broken:interrupted_env"], "'tests.broken:interrupted_env' failed: it raised KeyboardInterrupt"),
])
def test_factories_that_misbehave_are_one_line(flags, message, tmp_path, capsys):
    assert main([*TINY, *flags, "--out", str(tmp_path / "x")]) == 2
    assert message in _one_line(capsys)
    assert not (tmp_path / "x").exists()


def test_a_gymnax_class_works_as_an_env_factory(tmp_path):
    out = tmp_path / "class"
    assert main([*TINY, "--env", "gymnax.environments.classic_control.cartpole:CartPole", "--out", str(out)]) == 0
    assert loading.load_summary(out)["num_runs"] == 2


def test_names_too_long_for_the_file_system_are_one_line(tmp_path, capsys):
    long = tmp_path / ("x" * 300)
    assert main([*TINY, "--out", str(long)]) == 2
    err = _one_line(capsys)
    assert "cannot write to --out" in err and "File name too long" in err
    assert main(["--resume", str(long)]) == 2
    assert "File name too long" in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_distributed_without_a_cluster_is_one_line_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "PGJAX_NUM_PROCESSES",
                                                                      "PGJAX_PROCESS_ID", "SLURM_", "OMPI_"))}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pgjax.train", *TINY, "--distributed", "--out", str(tmp_path / "d")],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: --distributed: found no cluster to join") and \
        len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert time.monotonic() - started < 60 and not (tmp_path / "d").exists()


def test_a_double_ctrl_c_ends_quietly_and_two_resumes_at_once_leave_one_writer(tmp_path):
    """SIGINT twice 0.3 s apart: one line, no traceback. Then two --resume of the folder at once: one is
    refused in one line, the other trains; the survivor's results are bitwise the uninterrupted run's."""
    argv = ["--num-seeds", "4", "--num-updates", "200", "--episodes-per-update", "2", "--hidden", "8",
            "--checkpoint-every", "20"]
    command = [sys.executable, "-m", "pgjax.train", *argv]
    stopped = tmp_path / "stopped"
    process = subprocess.Popen([*command, "--out", str(stopped)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    deadline = time.monotonic() + 180
    while not (checkpoints.chunk_dir(stopped, 0) / "20").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 1, err
    assert not (stopped / SUMMARY_FILE).exists()
    resumes = [subprocess.Popen([sys.executable, "-m", "pgjax.train", "--resume", str(stopped), "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
               for _ in range(2)]
    finished = [(r.wait(timeout=300), r.stderr.read()) for r in resumes]
    codes = sorted(code for code, _ in finished)
    assert codes == [0, 2], finished
    refused = next(text for code, text in finished if code == 2)
    assert "is in use by another pgjax process" in refused and len(refused.strip().splitlines()) == 1, refused
    assert all("Traceback" not in text and "WARNING" not in text for _, text in finished), finished
    whole = tmp_path / "whole"
    subprocess.run([*command, "--quiet", "--out", str(whole)], check=True, capture_output=True, cwd=REPO)
    _same_results(stopped, whole)


def test_an_environment_that_raises_while_training_is_one_line_exit_1_and_the_run_resumes(tmp_path):
    """A failure while running (here an environment's host callback raising after 300 steps): one line naming
    the error and where it was raised, the resume command and the log; exit status 1; no traceback on the
    console; the traceback in the run folder's failure.log; the folder resumes (with an environment that works:
    the counter of tests/broken.py starts again in a new process, and fails again later)."""
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "pgjax.train", "--env", "tests.broken:raising_env", "--num-seeds", "2",
            "--num-updates", "200", "--episodes-per-update", "1", "--hidden", "8", "--checkpoint-every", "20",
            "--quiet", "--out", str(out)]
    root = Path(__file__).parent.parent
    done = subprocess.run(argv, capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stdout + done.stderr
    assert done.stderr.startswith("error: ZeroDivisionError: the simulator lost its state (in broken.py:")
    assert done.stderr.rstrip().endswith(f"resume with: python -m pgjax.train --resume {out} (its traceback is in "
                                         f"{out / files.FAILURE_LOG})")
    log = (out / files.FAILURE_LOG).read_text()
    assert "Traceback (most recent call last)" in log and "ZeroDivisionError" in log
    assert (out / CONFIG_FILE).is_file() and not (out / SUMMARY_FILE).exists()
    with pytest.raises(ValueError, match="interrupted run"):
        loading.check_run_dir(out)


@pytest.mark.parametrize("error, said", [
    (OSError(28, "No space left on device", "/runs/a/summary.json"),
     "no space left on device writing /runs/a/summary.json"),
    (ValueError('RESOURCE_EXHAUSTED: Error writing "state.update/0" in OCDBT database at local file "/runs/a/'
                'checkpoints/chunk-0000/20.orbax-checkpoint-tmp/": Failed to write 9 bytes to file 15: No space '
                "left on device [os_error_code='28']"),
     "no space left on device writing /runs/a/checkpoints/chunk-0000/20.orbax-checkpoint-tmp/"),
    (PermissionError(13, "Permission denied", "/runs/a/config.json"), "Permission denied: /runs/a/config.json"),
    (RuntimeError("UNKNOWN: Gloo AllGather failed: [pair.cc:547] Connection closed by peer [127.0.0.1]:1"),
     "another process of this --distributed run stopped or cannot be reached (UNKNOWN: Gloo AllGather failed: "
     "[pair.cc:547] Connection closed by peer [127.0.0.1]:1)"),
    (RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8 bytes"),
     "the device ran out of memory (RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8 bytes)"),
    (RuntimeError('INTERNAL: CpuCallback error calling callback: Traceback (most recent call last):\n  File "/x/'
                  'jax/callback.py", line 8, in _wrapped\n  File "/home/u/my_env.py", line 56, in step\nKeyError: 3'),
     "KeyError: 3 (in my_env.py:56, step, called from the compiled program)"),
])
def test_a_failure_while_running_is_described_in_one_line(error, said):
    from pgjax.commands.process import describe

    assert describe(error) == said
