"""The run folder's safety: the marker and --overwrite, full disks, damaged files, and `plot --out`."""

from __future__ import annotations

import builtins
import errno
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pgjax.commands import compare, evaluate, plot
from pgjax.commands.train import main as train_main
from pgjax.results import exports, plots
from pgjax.running.run_folder import files, loading
from pgjax.running.run_folder.files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CURVES_CSV,
    CURVES_PARQUET,
    FAILURE_LOG,
    MARKER_FILE,
    METRICS_FILE,
    PARAMS_FILE,
    PLOT_FILE,
    RUNS_FILE,
    SUMMARY_FILE,
    TMP_SUFFIX,
    note_written,
    prepare_out_dir,
    read_marker,
    record_folders,
    remove_run_files,
    write_marker,
)

from .test_plot import small_run_folder

TINY = ["--num-seeds", "2", "--num-updates", "2", "--episodes-per-update", "2", "--hidden", "8", "--quiet"]


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory):
    """The training command's folder of `test_plot`: 2 learning rates x 2 seeds (shared, never changed)."""
    return small_run_folder(tmp_path_factory)


@pytest.fixture
def copy_of(run_folder, tmp_path):
    """A copy of the run folder that a test may damage."""
    def copy(name: str = "copy") -> Path:
        target = tmp_path / name
        shutil.copytree(run_folder, target, ignore=shutil.ignore_patterns(CHECKPOINT_DIR))
        return target
    return copy


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder`: relative path -> content (None for a folder)."""
    return {p.relative_to(folder).as_posix(): None if p.is_dir() else p.read_bytes() for p in folder.rglob("*")}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.strip()


# --- the marker and --overwrite ---------------------------------------------------------------------------------


def users_folder(tmp_path: Path) -> Path:
    """The reported folder: the user's config.json, runs.csv, checkpoints/my_model.pt, wandb/, tensorboard/."""
    out = tmp_path / "mine"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "my_model.pt").write_bytes(b"weights")
    (out / "wandb").mkdir()
    (out / "wandb" / "run.log").write_text("the user's")
    (out / "tensorboard").mkdir()
    (out / "config.json").write_text('{"mine": true}')
    (out / "runs.csv").write_text("a,b\n")
    (out / "notes.txt").write_text("notes")
    return out


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_files_pgjax_did_not_write_are_a_clash_never_replaced(overwrite, tmp_path, capsys):
    out = users_folder(tmp_path)
    before = snapshot(out)
    assert train_main([*TINY, "--out", str(out), *overwrite]) == 2
    err = one_error_line(capsys)
    assert f"--out {out} holds config.json, runs.csv, checkpoints/, which pgjax did not write" in err
    assert "choose another --out (with or without --overwrite)" in err
    assert snapshot(out) == before


def test_a_folder_with_only_tracker_folders_and_notes_holds_no_run(tmp_path):
    out = tmp_path / "out"
    (out / "wandb").mkdir(parents=True)
    (out / "tensorboard").mkdir()
    (out / "notes.txt").write_text("notes")
    prepare_out_dir(out, overwrite=False)
    marker = read_marker(out)
    assert marker == {"files": [], "user_folders": ["tensorboard", "wandb"], "folder_files": {}}
    (out / "tensorboard" / "mine.txt").write_text("the user's")
    remove_run_files(out, this_command=True)  # a user's tracker folder is never pgjax's
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "tensorboard", "wandb"]
    assert (out / "tensorboard" / "mine.txt").exists()


def test_the_training_command_lists_what_it_wrote(run_folder):
    marker = read_marker(run_folder)
    written = {CONFIG_FILE, METRICS_FILE, PARAMS_FILE, RUNS_FILE, PLOT_FILE, SUMMARY_FILE}
    assert written <= set(marker["files"])
    on_disk = {p.name for p in run_folder.iterdir() if p.is_file()} - {MARKER_FILE}
    assert on_disk <= set(marker["files"]) | {"evaluation.json", "comparison.json", "performance_profiles.png",
                                              "probability_of_improvement.png"}
    assert not list(run_folder.rglob("*.tmp"))


def marked_run(tmp_path: Path) -> Path:
    """A run folder as pgjax leaves it, with files of the user's put inside pgjax's folders afterwards."""
    out = tmp_path / "run"
    prepare_out_dir(out, overwrite=False)
    files.write_json(out / CONFIG_FILE, {"a": 1})
    files.write_json(out / SUMMARY_FILE, {"a": 1})
    (out / (METRICS_FILE + TMP_SUFFIX)).write_bytes(b"left by a kill")
    note_written(out / METRICS_FILE)
    (out / "checkpoints" / "chunk-0000" / "4").mkdir(parents=True)
    (out / "checkpoints" / "chunk-0000" / "4" / "state").write_bytes(b"x")
    (out / "checkpoints" / "rung-1" / "chunk-0000").mkdir(parents=True)
    (out / "tensorboard" / "group0").mkdir(parents=True)
    (out / "tensorboard" / "group0" / "events.out.tfevents.1").write_bytes(b"e")
    record_folders(out)
    (out / "checkpoints" / "my_model.pt").write_bytes(b"weights")  # the user's, afterwards
    (out / "tensorboard" / "mine.txt").write_text("the user's")
    (out / "notes.txt").write_text("notes")
    return out


def test_overwrite_deletes_only_what_pgjax_wrote(tmp_path):
    out = marked_run(tmp_path)
    with pytest.raises(FileExistsError, match="already holds a run"):
        prepare_out_dir(out, overwrite=False)
    prepare_out_dir(out, overwrite=True)
    assert sorted(snapshot(out)) == [MARKER_FILE, "checkpoints", "checkpoints/my_model.pt", "notes.txt",
                                     "tensorboard", "tensorboard/mine.txt"]
    assert read_marker(out)["files"] == []


def test_a_run_file_the_marker_does_not_list_is_a_clash_even_with_overwrite(tmp_path):
    out = marked_run(tmp_path)
    (out / RUNS_FILE).write_text("the user's\n")
    before = snapshot(out)
    with pytest.raises(ValueError, match=r"holds runs.csv, which pgjax did not write \(no .pgjax-run.json lists it\)"):
        prepare_out_dir(out, overwrite=True)
    assert snapshot(out) == before


def test_a_run_of_pgjax_0_2_without_the_marker_is_kept(copy_of, capsys):
    old = copy_of()
    (old / MARKER_FILE).unlink()
    before = snapshot(old)
    assert train_main([*TINY, "--out", str(old), "--overwrite"]) == 2
    err = one_error_line(capsys)
    assert "config.json, summary.json, metrics.npz, params.msgpack, learning_curves.png, runs.csv" in err
    assert snapshot(old) == before
    assert loading.load_summary(old)["num_runs"] == 4  # still readable


@pytest.mark.parametrize("marker", [
    '[]', '{"format": "something else"}', "not json",
    '{"format": "pgjax run folder", "files": ["../outside.txt"]}',
    '{"format": "pgjax run folder", "files": ["/tmp/outside.txt"]}',
    '{"format": "pgjax run folder", "files": [".."]}',
    '{"format": "pgjax run folder", "files": [3]}',
    '{"format": "pgjax run folder", "folder_files": {"tensorboard": ["../../outside.txt"]}}',
    '{"format": "pgjax run folder", "folder_files": {"..": ["outside.txt"]}}',
    '{"format": "pgjax run folder", "user_folders": "tensorboard"}',
])
def test_a_damaged_marker_is_refused_and_nothing_goes(marker, tmp_path):
    (tmp_path / "outside.txt").write_text("keep")
    out = tmp_path / "a" / "b"
    out.mkdir(parents=True)
    (out / MARKER_FILE).write_text(marker)
    (out / "notes.txt").write_text("keep")
    for call in (lambda: prepare_out_dir(out, overwrite=True), lambda: remove_run_files(out)):
        with pytest.raises(ValueError, match=r"\.pgjax-run\.json is damaged") as error:
            call()
        assert "\n" not in str(error.value)
    assert (tmp_path / "outside.txt").read_text() == "keep" and (out / "notes.txt").exists()


def test_the_marker_is_never_followed_through_a_link(tmp_path):
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "secret.txt").write_text("keep")
    out = tmp_path / "run"
    prepare_out_dir(out, overwrite=False)
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / "link").symlink_to(secret, target_is_directory=True)
    marker = read_marker(out)
    marker["folder_files"] = {"tensorboard": ["link/secret.txt"]}
    write_marker(out, marker)
    prepare_out_dir(out, overwrite=True)
    assert (secret / "secret.txt").read_text() == "keep"


def test_a_tracker_that_cannot_start_removes_its_own_folders_only(tmp_path):
    out = tmp_path / "run"
    (out / "wandb").mkdir(parents=True)
    prepare_out_dir(out, overwrite=False)
    files.write_json(out / CONFIG_FILE, {"a": 1})
    (out / "tensorboard" / "group0").mkdir(parents=True)  # made by the tracker that then failed
    (out / "tensorboard" / "group0" / "events").write_bytes(b"e")
    (out / "wandb" / "mine").write_text("the user's")
    remove_run_files(out, this_command=True)
    assert sorted(snapshot(out)) == ["wandb", "wandb/mine"]


# --- a full disk ------------------------------------------------------------------------------------------------


class FullDisk:
    """Writes to temporary files named `<name>.tmp` (for the names given) fail with ENOSPC after a few bytes."""

    def __init__(self, monkeypatch, names: set[str] | None = None):
        self.names, self.hits = names, []
        real_open = builtins.open

        def fake_open(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            name = Path(str(file)).name if isinstance(file, (str, Path)) else ""
            target = name[:-len(TMP_SUFFIX)]
            if any(c in mode for c in "wax") and name.endswith(TMP_SUFFIX) and \
                    (self.names is None or target in self.names):
                self.hits.append(target)
                return _Failing(handle)
            return handle

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)


class _Failing:
    """A file whose writes fail with ENOSPC once it holds 10 bytes (what is written before stays on disk)."""

    def __init__(self, handle):
        self.handle, self.written = handle, 0

    def write(self, data):
        if self.written + len(data) > 10:
            self.handle.write(data[:10 - self.written])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def _metrics():
    from pgjax.algo.trainer import Metrics

    shapes = Metrics.shapes(3)
    return Metrics(**{name: np.ones((2, *getattr(shapes, name).shape), getattr(shapes, name).dtype)
                      for name in Metrics.names()})


WRITERS = {
    "config.json": lambda d: files.write_json(d / "config.json", {"a": list(range(100))}),
    "metrics.npz": lambda d: files.write_metrics(d / "metrics.npz", [_metrics()], [np.arange(2)]),
    "params.msgpack": lambda d: files.write_params(d / "params.msgpack", [{"w": np.ones((2, 50))}]),
    "runs.csv": lambda d: exports.write_csv(d / "runs.csv", ["a"], [[i] for i in range(100)]),
    "learning_curves.png": lambda d: plots.plot_curves(
        [{"label": "x", "env_steps": np.cumsum(np.ones((2, 5)), 1), "returns": np.ones((2, 5))}],
        d / "learning_curves.png", reps=10),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(name, tmp_path, monkeypatch):
    prepare_out_dir(tmp_path / "run", overwrite=False)
    disk = FullDisk(monkeypatch, {name})
    with pytest.raises(ValueError) as error:
        WRITERS[name](tmp_path / "run")
    assert disk.hits == [name]
    message = str(error.value)
    assert message.startswith(f"no space left on device writing {tmp_path / 'run' / name} (") and "free)" in message
    assert "\n" not in message and isinstance(error.value.__cause__, OSError)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [MARKER_FILE]


def test_a_full_disk_writing_parquet_leaves_no_temporary_file(tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")

    def failing(table, where):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(ValueError, match=r"^no space left on device writing .*curves.parquet \(up to .* needed, "):
        exports.write_parquet(tmp_path / "curves.parquet", {"a": np.arange(3)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", [CONFIG_FILE, METRICS_FILE, PLOT_FILE, SUMMARY_FILE])
def test_training_on_a_full_disk_leaves_no_finished_looking_folder(name, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    FullDisk(monkeypatch, {name})
    assert train_main([*TINY, "--out", str(out)]) == 1  # a failure while running, not bad input
    err = one_error_line(capsys)
    assert err.startswith(f"error: no space left on device writing {out / name} (")
    if name != CONFIG_FILE:  # trained: the folder resumes, and its failure log holds the traceback
        assert f"free space, then resume with: python -m pgjax.train --resume {out} (its traceback is in " \
               f"{out / FAILURE_LOG})" in err
        assert "Traceback (most recent call last)" in (out / FAILURE_LOG).read_text()
    assert not list(out.rglob("*.tmp")) and not (out / SUMMARY_FILE).exists()
    with pytest.raises(ValueError, match="interrupted run|holds no run"):
        loading.check_run_dir(out)


# --- damaged run folders ----------------------------------------------------------------------------------------


def _edit_summary(change):
    def damage(d: Path) -> None:
        summary = json.loads((d / SUMMARY_FILE).read_text())
        change(summary)
        (d / SUMMARY_FILE).write_text(json.dumps(summary))
    return damage


def _truncate(name: str):
    def damage(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[:len(data) // 2])
    return damage


SUMMARY_DAMAGE = {
    "a list": (lambda d: (d / SUMMARY_FILE).write_text("[]"), "holds a JSON list, not an object"),
    "invalid JSON": (lambda d: (d / SUMMARY_FILE).write_text('{"env": "CartPole-v1",\n"runs": [\n{,}]}'),
                     "is not valid JSON (line 3: Expecting property name enclosed in double quotes)"),
    "not text": (lambda d: (d / SUMMARY_FILE).write_bytes(b"\xff\xfe\x00"), "is not text"),
    "no groups": (_edit_summary(lambda s: s.pop("groups")), '"groups" is not a list of objects'),
    "groups of numbers": (_edit_summary(lambda s: s.update(groups=[1, 2])), '"groups" is not a list of objects'),
    "a run of no group": (_edit_summary(lambda s: s["runs"][0].update(group=7)), "run 0 lacks"),
    "a group without its runs": (_edit_summary(lambda s: s["groups"][1].update(runs=[0])), "group 1's \"runs\""),
    "a seed as text": (_edit_summary(lambda s: s["runs"][1].update(seed="1")), "run 1 lacks an integer seed"),
}


@pytest.mark.parametrize("command", ["evaluate", "plot", "compare"])
@pytest.mark.parametrize("damage", sorted(SUMMARY_DAMAGE))
def test_a_damaged_summary_is_one_line_naming_it(command, damage, copy_of, capsys):
    folder = copy_of()
    write, problem = SUMMARY_DAMAGE[damage]
    write(folder)
    main = {"evaluate": evaluate.main, "plot": plot.main, "compare": compare.main}[command]
    assert main([str(folder)]) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"error: {folder / SUMMARY_FILE} ") and problem in err, err
    assert err.endswith("; the run folder is damaged")


@pytest.mark.parametrize("damage", sorted(SUMMARY_DAMAGE))
def test_the_loaders_raise_one_value_error_for_a_damaged_summary(damage, copy_of):
    folder = copy_of()
    SUMMARY_DAMAGE[damage][0](folder)
    (folder / RUNS_FILE).unlink()  # load_results reads summary.json then
    loaders = [loading.load_summary, loading.load_params, lambda d: loading.load_run_config(d, 0),
               lambda d: plots.group_curves([d])]
    if _has_pandas():
        loaders.append(exports.load_results)
    for load in loaders:
        with pytest.raises(ValueError) as error:
            load(folder)
        message = str(error.value)
        assert message.startswith(f"{folder / SUMMARY_FILE} ") and "\n" not in message
        assert message.endswith("; the run folder is damaged")


def _has_pandas() -> bool:
    import importlib.util

    return importlib.util.find_spec("pandas") is not None


def test_a_truncated_metrics_file_is_one_line_naming_it(copy_of, capsys):
    folder = copy_of()
    _truncate(METRICS_FILE)(folder)
    assert plot.main([str(folder)]) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"error: {folder / METRICS_FILE} cannot be read (BadZipFile")
    for load in (loading.load_metrics, lambda d: loading.load_group_metrics(d, 0)):
        with pytest.raises(ValueError, match="metrics.npz cannot be read") as error:
            load(folder)
        assert error.value.__cause__ is not None


def test_metrics_that_do_not_match_the_summary_are_named(copy_of, capsys):
    folder = copy_of()
    arrays = dict(np.load(folder / METRICS_FILE))
    arrays = {k: v[:1] for k, v in arrays.items()}  # one run per group left of two
    np.savez(folder / METRICS_FILE, **arrays)
    assert plot.main([str(folder)]) == 2
    assert "metrics.npz holds 1 runs of group 0 and summary.json 2" in one_error_line(capsys)


@pytest.mark.parametrize("content", ["half", b"\xc1garbage", "a list"])
def test_a_damaged_params_file_is_one_line_naming_it(content, copy_of, capsys):
    from flax import serialization

    folder = copy_of()
    path = folder / PARAMS_FILE
    if content == "half":
        _truncate(PARAMS_FILE)(folder)
    elif content == "a list":
        path.write_bytes(serialization.msgpack_serialize([1, 2]))
    else:
        path.write_bytes(content)
    assert evaluate.main([str(folder)]) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"error: {path} ") and err.endswith("the run folder is damaged")
    with pytest.raises(ValueError, match="params.msgpack"):
        loading.load_params(folder, 0)


@pytest.mark.skipif(not _has_pandas(), reason="pandas")
@pytest.mark.parametrize("name,content", [
    (RUNS_FILE, b"\xff\xfe"), (RUNS_FILE, b"x,y\n1,2\n"), (RUNS_FILE, b""),
    (CURVES_PARQUET, b"PAR1 truncated"), (CURVES_CSV, b"run,group\n1,2\n"),
])
def test_load_results_names_a_damaged_export(name, content, copy_of):
    folder = copy_of()
    for other in (CURVES_PARQUET, CURVES_CSV):
        (folder / other).unlink(missing_ok=True)
    if name != RUNS_FILE:
        exports.write_exports(folder, loading.load_summary(folder), loading.load_metrics(folder),
                              parquet=name == CURVES_PARQUET)
    (folder / name).write_bytes(content)
    with pytest.raises(ValueError, match=f"^{folder / name} cannot be read .*; the run folder is damaged$") as error:
        exports.load_results(folder)
    assert error.value.__cause__ is not None


def test_a_config_that_is_not_an_object_is_named_on_resume(copy_of, capsys):
    folder = copy_of()
    (folder / SUMMARY_FILE).unlink()
    (folder / CONFIG_FILE).write_text("[1, 2]")
    assert train_main(["--resume", str(folder)]) == 2
    assert one_error_line(capsys) == (f"error: {folder / CONFIG_FILE} holds a JSON list, not an object; "
                                      "the run folder is damaged")


def test_a_damaged_earlier_evaluation_is_recomputed(tmp_path):
    path = tmp_path / "evaluation.json"
    path.write_text('{"env": "CartPole-v1", "episodes": 2, "seed": 0, "runs": [1], "groups": 3}')
    assert evaluate.keep_earlier_results({"env": "CartPole-v1", "episodes": 2, "seed": 0, "runs": []}, path) == []


# --- plot --out -------------------------------------------------------------------------------------------------


def test_plot_out_folder_writes_inside_it_and_says_so(run_folder, tmp_path, capsys):
    assert plot.main([str(run_folder), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"learning curves in {tmp_path / PLOT_FILE}\n"
    assert (tmp_path / PLOT_FILE).stat().st_size > 20_000


@pytest.mark.parametrize("out,message", [
    ("{tmp}/no/such/x.png", "no such folder for --out: {tmp}/no/such"),
    ("{tmp}/file/x.png", "--out {tmp}/file/x.png: {tmp}/file is a file, not a folder"),
    ("{tmp}/x.xyz", "cannot write a figure to {tmp}/x.xyz: give a file ending in .png"),
    ("{tmp}/curves", "--out {tmp}/curves names no image format: give the figure's file, e.g. --out {tmp}/curves.png"),
    ("{tmp}/file", "--out {tmp}/file names no image format: give the figure's file, e.g. --out {tmp}/file.png"),
    ("{tmp}/notes.png", "--out {tmp}/notes.png is an existing file, not a PNG image: pgjax writes neither over it "
                        "nor beside it"),
    ("{tmp}/notes.pdf", "--out {tmp}/notes.pdf is an existing file, not a PDF image"),
    ("{tmp}/image.pdf", "--out {tmp}/image.pdf is an existing file, not a PDF image"),  # a PNG named .pdf
])
def test_plot_out_that_cannot_be_written_is_one_line(out, message, run_folder, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    for name in ("notes.png", "notes.pdf"):
        (tmp_path / name).write_text("my notes\n")
    (tmp_path / "image.pdf").write_bytes((run_folder / PLOT_FILE).read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert plot.main([str(run_folder), "--out", out.format(tmp=tmp_path)]) == 2
    assert one_error_line(capsys).startswith(f"error: {message.format(tmp=tmp_path)}")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing over them, nothing beside


def test_plot_out_that_is_a_device_or_a_users_file_is_refused(run_folder, capsys):
    assert plot.main([str(run_folder), "--out", "/dev/null"]) == 2
    assert one_error_line(capsys).startswith("error: --out /dev/null names no image format")
    assert plot.main([str(run_folder), "--out", "/etc/hostname"]) == 2
    assert one_error_line(capsys).startswith("error: --out /etc/hostname names no image format")
    assert not Path("/etc/hostname.png").exists()


def test_plot_out_writes_over_its_own_image_and_an_empty_file(run_folder, tmp_path, capsys):
    for name in ("a.png", "b.pdf", "c.svg"):
        (tmp_path / name).write_bytes(b"")
        for _ in range(2):  # empty, then the figure written the first time
            assert plot.main([str(run_folder), "--out", str(tmp_path / name)]) == 0
            assert capsys.readouterr().out == f"learning curves in {tmp_path / name}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.pdf", "c.svg"]
    assert (tmp_path / "b.pdf").read_bytes().startswith(b"%PDF-")


def test_plot_out_in_a_folder_that_is_not_writable_is_one_line(run_folder, tmp_path, write_probes_refused, capsys):
    assert plot.main([str(run_folder), "--out", str(tmp_path / "x.png")]) == 2
    assert one_error_line(capsys) == (f"error: cannot write to --out {tmp_path / 'x.png'}: Permission denied in "
                                      f"{tmp_path}")


def test_plot_of_the_mean_goes_beside_the_iqm_plot(copy_of, capsys):
    folder = copy_of()
    iqm = (folder / PLOT_FILE).read_bytes()
    assert plot.main([str(folder), "--statistic", "mean"]) == 0
    assert capsys.readouterr().out == f"learning curves in {folder / 'learning_curves_mean.png'}\n"
    assert (folder / PLOT_FILE).read_bytes() == iqm  # train's IQM figure is kept
    assert (folder / "learning_curves_mean.png").stat().st_size > 20_000


def test_compare_makes_a_missing_out_folder_and_bad_input_leaves_none(run_folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert compare.main([str(run_folder), "--out", str(out), "--resamples", "1000"]) == 0
    assert (out / "comparison.json").is_file()
    refused = tmp_path / "refused"
    assert compare.main([str(run_folder), "--out", str(refused), "--baseline", "99", "--resamples", "1000"]) == 2
    assert not refused.exists()
    (tmp_path / "file").write_text("")
    assert compare.main([str(run_folder), "--out", str(tmp_path / "file")]) == 2
    assert "is a file: give a folder" in capsys.readouterr().err


@pytest.mark.parametrize("name, content, message", [
    ("comparison.json", b'{"mine": 1}', "--out {out}/comparison.json is an existing file, not a comparison.json of "
                                        "pgjax.compare"),
    ("performance_profiles.png", b"my notes", "--out {out}/performance_profiles.png is an existing file, not a PNG "
                                              "image: pgjax writes neither over it nor beside it"),
    ("probability_of_improvement.png", b"\0", "--out {out}/probability_of_improvement.png is an existing file"),
])
def test_compare_writes_over_no_file_of_its_names_that_is_not_its_own(name, content, message, run_folder, tmp_path,
                                                                      capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / name).write_bytes(content)
    assert compare.main([str(run_folder), "--out", str(out), "--resamples", "100"]) == 2
    assert one_error_line(capsys).startswith(f"error: {message.format(out=out)}")
    assert [p.name for p in out.iterdir()] == [name] and (out / name).read_bytes() == content


def test_compare_writes_over_its_own_files_and_refuses_a_files_name_for_out(run_folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    for _ in range(2):
        assert compare.main([str(run_folder), "--out", str(out), "--resamples", "100"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json", "performance_profiles.png",
                                                      "probability_of_improvement.png"]
    capsys.readouterr()
    assert compare.main([str(run_folder), "--out", str(tmp_path / "cmp.json"), "--resamples", "100"]) == 2
    assert one_error_line(capsys).startswith(f"error: --out {tmp_path / 'cmp.json'} names a file; compare writes "
                                             "comparison.json and its plots into a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp"]


# --- links: a run folder is read inside itself ------------------------------------------------------------------


def link_outside(folder: Path, name: str, tmp_path: Path) -> Path:
    """Move `folder / name` out of the folder and leave a symbolic link to it; returns where it went."""
    target = tmp_path / f"outside-{name.replace('/', '-')}"
    shutil.move(folder / name, target)
    (folder / name).symlink_to(target)
    return target


LINKED_READS = {
    SUMMARY_FILE: lambda d: plot.main([str(d)]),
    METRICS_FILE: lambda d: plot.main([str(d)]),
    PARAMS_FILE: lambda d: evaluate.main([str(d), "--episodes", "1"]),
    "evaluation.json": lambda d: evaluate.main([str(d), "--episodes", "1"]),
    RUNS_FILE: lambda d: exports.load_results(d),
    CURVES_PARQUET: lambda d: exports.load_results(d),
}


@pytest.mark.parametrize("name", LINKED_READS)
def test_a_file_linked_outside_the_run_folder_is_refused_in_one_line(name, copy_of, tmp_path, capsys):
    folder = copy_of()
    if name == "evaluation.json":
        assert evaluate.main([str(folder), "--episodes", "1"]) == 0
        capsys.readouterr()
    target = link_outside(folder, name, tmp_path)
    before = target.read_bytes()
    message = (f"{folder / name} is a symlink leading outside the run folder (to {target}); pgjax reads and writes "
               "a run folder only inside it")
    if name in (RUNS_FILE, CURVES_PARQUET):
        with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
            LINKED_READS[name](folder)
    else:
        assert LINKED_READS[name](folder) == 2
        assert one_error_line(capsys).startswith(f"error: {message}")
    assert target.read_bytes() == before and (folder / name).is_symlink()


def test_compare_and_the_loaders_refuse_a_summary_linked_outside(copy_of, tmp_path, capsys):
    folder = copy_of()
    link_outside(folder, SUMMARY_FILE, tmp_path)
    assert compare.main([str(folder), "--resamples", "100"]) == 2
    assert "summary.json is a symlink leading outside the run folder" in one_error_line(capsys)
    for load in (loading.load_summary, loading.load_metrics, loading.load_params):
        with pytest.raises(ValueError, match="summary.json is a symlink leading outside the run folder"):
            load(folder)


def test_a_link_that_stays_inside_the_run_folder_is_read(copy_of, capsys):
    folder = copy_of()
    (folder / SUMMARY_FILE).rename(folder / "real-summary.json")
    (folder / SUMMARY_FILE).symlink_to("real-summary.json")
    assert plot.main([str(folder), "--out", str(folder / "x.png")]) == 0
    assert loading.load_summary(folder)["env"] == "CartPole-v1"


@pytest.mark.parametrize("name", [CONFIG_FILE, CHECKPOINT_DIR, f"{CHECKPOINT_DIR}/chunk-0000", ".pgjax.lock"])
def test_resume_refuses_a_link_leading_outside_before_it_reads_writes_or_deletes(name, copy_of, tmp_path, capsys):
    folder = copy_of()
    (folder / SUMMARY_FILE).unlink()
    (folder / CHECKPOINT_DIR / "chunk-0000").mkdir(parents=True)
    (folder / CHECKPOINT_DIR / "chunk-0000" / "kept").write_text("precious")
    if name == ".pgjax.lock":
        (folder / name).write_text("precious")
    target = link_outside(folder, name, tmp_path)
    before = snapshot(tmp_path)
    assert train_main(["--resume", str(folder)]) == 2
    assert one_error_line(capsys).startswith(f"error: {folder / name} is a symlink leading outside the run folder "
                                             f"(to {target})")
    assert snapshot(tmp_path) == before  # nothing outside read into, written or deleted


def test_plot_and_compare_of_runs_that_all_diverged_to_nan_print_no_warning(copy_of, tmp_path):
    import subprocess
    import sys

    folder = copy_of()
    with np.load(folder / METRICS_FILE) as data:
        arrays = {name: data[name] for name in data.files}
    for name in arrays:
        if name.endswith("/episode_return"):
            arrays[name] = np.full_like(arrays[name], np.nan)
    with open(folder / METRICS_FILE, "wb") as file:
        np.savez_compressed(file, **arrays)
    for command in (["pgjax.plot", str(folder), "--out", str(tmp_path / "nan.png")],
                    ["pgjax.compare", str(folder), "--out", str(tmp_path / "cmp"), "--resamples", "100"]):
        done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr


def test_every_image_format_matplotlib_writes_is_told_from_a_users_file(tmp_path):
    from matplotlib.figure import Figure

    from pgjax.commands.outputs import image

    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1])
    for image_format in figure.canvas.get_supported_filetypes():
        path, notes = tmp_path / f"figure.{image_format}", tmp_path / f"notes.{image_format}"
        try:
            figure.savefig(path, format=image_format)
        except Exception:  # a format whose writer is not installed (e.g. pgf without LaTeX)
            continue
        notes.write_text("my notes\n")
        own = image(image_format)
        assert not own.recognise(notes)
        assert own.recognise(path) == (image_format not in ("raw", "rgba")), image_format  # bare pixels: no signature
