"""A run folder is data, never code: loading, evaluating, comparing and resuming a folder whose files name
a module import nothing; a factory the user names again is checked against the folder's record."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from pgjax import load_policy
from pgjax.commands import compare, evaluate, gradients
from pgjax.commands import train as train_command
from pgjax.running.run_folder import trust
from pgjax.running.run_folder.files import CONFIG_FILE, SUMMARY_FILE, WANDB_DIR

CHAIN = "tests.custom:make_chain"
LINEAR = "tests.custom:linear_network"
EVIL_MODULE = "pgjax_test_evil_module"
# At import, the attacker's module leaves a file behind: the tests look for it.
EVIL_SOURCE = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("the run folder's module was imported")
def make():
    raise SystemExit("the run folder's factory was called")
"""


@pytest.fixture(scope="module")
def custom_folder(tmp_path_factory) -> Path:
    """A finished run of the tests' own environment and network factories: 2 seeds x 2 updates."""
    out = tmp_path_factory.mktemp("trust") / "chain"
    argv = ["--env", CHAIN, "--network", LINEAR, "--num-seeds", "2", "--num-updates", "2",
            "--episodes-per-update", "2", "--out", str(out), "--quiet", "--compile-cache", "off"]
    assert train_command.main(argv) == 0
    return out


@pytest.fixture
def evil(tmp_path, monkeypatch) -> Path:
    """An importable attacker's module (on sys.path, as `python -m` puts the current folder); returns its folder."""
    folder = tmp_path / "downloaded"
    folder.mkdir()
    (folder / f"{EVIL_MODULE}.py").write_text(EVIL_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop(EVIL_MODULE, None)


def _never_imported(evil: Path) -> None:
    assert EVIL_MODULE not in sys.modules
    assert not (evil / "IMPORTED").exists()


def _rename(folder: Path, env: str | None = None, network: str | None = None) -> None:
    """Write other names into the folder's summary.json and config.json, as an attacker (or a mistake) would."""
    summary_file, config_file = folder / SUMMARY_FILE, folder / CONFIG_FILE
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        if env is not None:
            summary["env"] = env
        for run in summary["runs"]:
            run["hyperparameters"].update({k: v for k, v in (("env", env), ("network", network)) if v})
        summary_file.write_text(json.dumps(summary))
    config = json.loads(config_file.read_text())
    for point in config["grid"]:
        point["config"]["static"].update({k: v for k, v in (("env", env), ("network", network)) if v})
    config_file.write_text(json.dumps(config))


def _copy(folder: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    return copy


@pytest.mark.parametrize("names", [{"env": f"{EVIL_MODULE}:make"}, {"network": f"{EVIL_MODULE}:make"}])
def test_evaluate_and_load_policy_import_no_module_a_folder_names(custom_folder, tmp_path, evil, names, capsys):
    folder = _copy(custom_folder, tmp_path, "bundle")
    _rename(folder, **names)
    confirmed = [] if "env" in names else ["--env", CHAIN]  # the folder's own environment, named again
    assert evaluate.main([str(folder), "--episodes", "1", *confirmed]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "imports no code a run folder names" in err and f"{EVIL_MODULE}:make" in err
    # The user's own factories, named again, are not the folder's: a mismatch, and still no import.
    flags = ["--env", CHAIN, "--network", LINEAR]
    assert evaluate.main([str(folder), "--episodes", "1", *flags]) == 2
    assert f"which names '{EVIL_MODULE}:make'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="imports no code"):
        load_policy(folder, env=None if "env" in names else CHAIN)
    with pytest.raises(ValueError, match="is not the"):
        load_policy(folder, env=CHAIN, network=LINEAR)
    _never_imported(evil)


@pytest.mark.parametrize("names", [{"env": f"{EVIL_MODULE}:make"}, {"network": f"{EVIL_MODULE}:make"}])
def test_gradients_imports_no_module_a_folder_names(custom_folder, tmp_path, evil, names, capsys):
    folder = _copy(custom_folder, tmp_path, "bundle")
    _rename(folder, **names)
    small = ["--episodes", "4", "--reference-batches", "1", "--resamples", "20"]
    confirmed = [] if "env" in names else ["--env", CHAIN]
    assert gradients.main([str(folder), *small, *confirmed]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "imports no code a run folder names" in err and f"{EVIL_MODULE}:make" in err
    assert gradients.main([str(folder), *small, "--env", CHAIN, "--network", LINEAR]) == 2
    assert f"which names '{EVIL_MODULE}:make'" in capsys.readouterr().err
    assert not (folder / "gradients.json").exists()
    _never_imported(evil)


def test_gradients_of_a_factory_folder_need_its_factories_named_again(custom_folder, tmp_path, capsys):
    folder = _copy(custom_folder, tmp_path, "named")
    small = ["--episodes", "4", "--reference-batches", "1", "--resamples", "20"]
    assert gradients.main([str(folder), *small]) == 2
    assert f"--env {CHAIN}" in capsys.readouterr().err
    assert gradients.main([str(folder), *small, "--env", CHAIN, "--network", LINEAR]) == 0
    assert json.loads((folder / "gradients.json").read_text())["weightings"][0]["name"] == "run"


def test_resume_imports_no_module_its_config_names(custom_folder, tmp_path, evil, capsys):
    folder = _copy(custom_folder, tmp_path, "interrupted")
    (folder / SUMMARY_FILE).unlink()  # an interrupted run, every chunk checkpointed
    _rename(folder, env=f"{EVIL_MODULE}:make")
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert train_command.main(["--resume", str(folder), "--network", LINEAR]) == 2
    err = capsys.readouterr().err
    assert "config.json names the environment factory" in err and err.count("\n") == 1
    assert train_command.main(["--resume", str(folder), "--env", CHAIN, "--network", LINEAR]) == 2
    assert f"--env {CHAIN} is not the environment of" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # nothing written
    _never_imported(evil)


def test_resume_imports_no_weighting_or_loss_it_was_not_named_again(custom_folder, tmp_path, evil, capsys):
    """A weighting or step loss of one's own is code: a resume imports the one its config.json names only when
    the user names it again (`--weighting`, `--step-loss`)."""
    folder = tmp_path / "weighted"
    argv = ["--weighting", "tests.custom:returns_to_go", "--num-seeds", "2", "--num-updates", "2",
            "--episodes-per-update", "2", "--out", str(folder), "--quiet", "--compile-cache", "off"]
    assert train_command.main(argv) == 0
    (folder / SUMMARY_FILE).unlink()  # an interrupted run, every chunk checkpointed
    assert train_command.main(["--resume", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "names the weighting function 'tests.custom:returns_to_go'" in err and err.count("\n") == 1
    assert "--weighting tests.custom:returns_to_go on the command line" in err
    config = json.loads((folder / CONFIG_FILE).read_text())
    for point in config["grid"]:
        point["config"]["static"]["step_loss"] = f"{EVIL_MODULE}:make"
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    assert train_command.main(["--resume", str(folder), "--weighting", "tests.custom:returns_to_go"]) == 2
    assert "names the step loss function" in capsys.readouterr().err
    _never_imported(evil)
    for point in config["grid"]:
        point["config"]["static"]["step_loss"] = ""
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    assert train_command.main(["--resume", str(folder), "--weighting", "tests.custom:returns_to_go"]) == 0
    assert (folder / SUMMARY_FILE).exists()


def test_compare_of_environments_imports_no_module_a_folder_names(custom_folder, tmp_path, evil, capsys):
    chain = _copy(custom_folder, tmp_path, "chain")
    other = _copy(custom_folder, tmp_path, "other")
    _rename(other, env=f"{EVIL_MODULE}:make")
    assert compare.main([str(chain), str(other), "--out", str(tmp_path), "--env", CHAIN]) == 2
    assert "imports no code a run folder names" in capsys.readouterr().err
    assert compare.main([str(chain), str(other), "--out", str(tmp_path), "--env", CHAIN, "x:y"]) == 2
    assert "--env x:y is not the environment of" in capsys.readouterr().err
    assert not (tmp_path / compare.COMPARISON_FILE).exists()
    _never_imported(evil)


def test_a_factory_folder_needs_its_factories_named_again(custom_folder, capsys):
    assert evaluate.main([str(custom_folder), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert f"names the environment factory '{CHAIN}'" in err and f"--env {CHAIN}" in err
    assert evaluate.main([str(custom_folder), "--episodes", "1", "--env", CHAIN]) == 2
    assert f"--network {LINEAR}" in capsys.readouterr().err
    assert evaluate.main([str(custom_folder), "--episodes", "1", "--env", "tests.custom:make_long_chain",
                          "--network", LINEAR]) == 2
    assert "--env tests.custom:make_long_chain is not the environment of" in capsys.readouterr().err
    assert evaluate.main([str(custom_folder), "--episodes", "2", "--env", CHAIN, "--network", LINEAR]) == 0
    act = load_policy(custom_folder, run=1, env=CHAIN, network=LINEAR)
    assert act([1.0, 0.0, 0.0, 0.0]) in (0, 1)


def test_resume_starts_no_tracker_its_config_names(custom_folder, tmp_path, capsys):
    folder = _copy(custom_folder, tmp_path, "tracked")
    (folder / SUMMARY_FILE).unlink()
    config = json.loads((folder / CONFIG_FILE).read_text())
    logs = tmp_path / "their-logs"
    config["run"].update(tensorboard=str(logs), wandb="their-project", distributed=False)
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    assert train_command.main(["--resume", str(folder), "--env", CHAIN, "--network", LINEAR]) == 0
    out = capsys.readouterr().out
    assert "a resumed run starts no tracker its folder names" in out and "--wandb their-project" in out
    assert not logs.exists() and not (folder / WANDB_DIR).exists()
    assert (folder / SUMMARY_FILE).is_file()


def test_confirm_reads_names_as_untrusted_data():
    assert trust.confirm("CartPole-v1", (), "env", "f") == "CartPole-v1"
    assert trust.confirm("a.b:c", ("a.b:c",), "network", "f") == "a.b:c"
    for damaged in (None, 3, ["a:b"], ""):
        with pytest.raises(ValueError, match="the run folder is damaged"):
            trust.confirm(damaged, (), "env", "f")
    with pytest.raises(ValueError, match="--network x:y is not the network of f, which names 'mlp'"):
        trust.check_given(("x:y",), {"mlp"}, "network", "f")
