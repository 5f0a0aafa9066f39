"""What a training command records in its run folder: config.json before it trains, the results after.

    record = config_record(sys.argv, preset, run, given, search, points, chunks, estimates, devices)
    made = start_run_folder(out, overwrite, hold, record)   # a new (or replaced) folder with config.json
    saved, points = read_resumable(resumable_config(folder), run_fields)  # what --resume reads back
    summary = write_results(out, points, groups, results, timings, outcome, ...)  # summary.json last

config.json's fields (`config_record`) are the one statement of its schema; `pgjax.running.resume`
checks them as untrusted data when a run is resumed (`check_saved_config`, `resumed_chunks`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from pgjax.algo.config import Config
from pgjax.results import loading, outputs, trust
from pgjax.results.folder import CONFIG_FILE, METRICS_FILE, PARAMS_FILE, SUMMARY_FILE, prepare_out_dir
from pgjax.running import resume
from pgjax.running.folder_lock import FolderLock, hold_new_folder, remove_made_folders
from pgjax.running.grid import GridPoint


def config_record(command: list[str], preset: str, run: Any, given: dict, search: dict | None,
                  points: list[GridPoint], chunks: list, estimates: list[dict] | None, devices: list) -> dict:
    """config.json: the command, the preset, the run options (a dataclass), the settings given, the search,
    the grid, the seeds, the chunk plan, the memory estimate, the devices and the package versions."""
    return {
        "command": command, "preset": preset, "run": dataclasses.asdict(run), "given": given, "search": search,
        "grid": [{"index": p.index, "config": p.config.to_dict()} for p in points],
        "seeds": {"first": run.seed, "count": run.num_seeds},
        "chunks": resume.chunk_plan(chunks),
        "memory_estimate": estimates, "num_devices": len(devices),
        "versions": outputs.package_versions(outputs.DECIDING_PACKAGES + (  # TPE's points: Optuna's
            ("optuna",) if search and search.get("sampler") == "tpe" else ())), "devices": [str(d) for d in devices],
    }


def start_run_folder(out: Path, overwrite: bool, hold: FolderLock, record: dict) -> list[Path]:
    """Make (or, with `overwrite`, clear) the run folder `out`, held by `hold`, and write config.json there.

    Returns:
      The folders this command made (`remove_made_folders` takes them away again).

    Raises:
      ValueError, FileExistsError: the folder cannot be used (a clash, a damaged marker); the folders
        made for it are gone again and `hold` is released.
    """
    made = hold_new_folder(out, hold)
    try:
        prepare_out_dir(out, overwrite)
    except BaseException:
        hold.release()
        remove_made_folders(out, made)
        raise
    outputs.write_json(out / CONFIG_FILE, record)
    return made


def resumable_config(folder: Path) -> Path:
    """The config.json of the interrupted run in `folder`.

    Raises:
      ValueError: one line: no such folder, no run in it, or a finished run.
    """
    if not folder.is_dir():
        raise ValueError(f"--resume {folder}: no such folder")
    config_file = folder / CONFIG_FILE
    if not config_file.exists():
        raise ValueError(f"{folder} holds no run to resume (no {CONFIG_FILE})")
    if (folder / SUMMARY_FILE).exists():
        raise ValueError(f"{folder} holds a finished run; there is nothing to resume")
    return config_file


def read_resumable(config_file: Path, run_fields: dict[str, Any], env: str | None = None,
                   networks: tuple[str, ...] = ()) -> tuple[dict, list[GridPoint]]:
    """An interrupted run's config.json (`resumable_config`), checked as untrusted data, and its grid points.

    Args:
      run_fields: the type of each run option (`typing.get_type_hints` of the command's run options).
      env, networks: the factories the user names again (`--env`, `--network`), which a folder's
        own names may be (`pgjax.results.trust.confirm_configs`).

    Raises:
      ValueError: one line: another version's folder, a damaged config.json or a factory it names
        that was not named again.
    """
    saved = loading.load_json(config_file)
    if "run" not in saved:
        raise ValueError(f"{config_file.parent} was written by another pgjax version; it cannot be resumed by "
                         "this one")
    resume.check_saved_config(config_file, saved, run_fields)
    points = [GridPoint(p["index"], Config.from_dict(p["config"])) for p in saved["grid"]]
    trust.confirm_configs([p.config for p in points], str(config_file), env, networks)
    return saved, points


def plan_or_resume_chunks(out: Path, resuming: bool, groups: list, num_seeds: int, devices: list,
                          max_parallel: int | None, block_rows: int | None = None) -> tuple[list, list[dict] | None]:
    """The chunks to train: a resumed run's saved plan (checked), else a new plan that fits memory.

    Returns:
      (chunks, estimates): `pgjax.running.sweep.plan_chunks`'s, or the saved chunks and None.

    Raises:
      ValueError: a saved plan that does not fit the grid or the devices, or results that would not
        fit the host's memory (`pgjax.running.memory.check_host_memory`), or chunks that do not fit.
    """
    from pgjax.running.memory import check_host_memory
    from pgjax.running.sweep import plan_chunks

    if resuming:
        config_file = out / CONFIG_FILE
        return resume.resumed_chunks(config_file, loading.load_json(config_file), groups, num_seeds, devices), None
    check_host_memory(groups, num_seeds)
    return plan_chunks(groups, num_seeds, devices, max_parallel, block_rows=block_rows)


def write_results(out: Path, points: list[GridPoint], groups: list, results: list, timings: dict, outcome,
                  preset: str, num_seeds: int, search: dict | None, spec, start: float,
                  confirmation: dict | None = None) -> dict:
    """Write metrics.npz, params.msgpack, the exports, the plot and summary.json (last) into `out`; returns the summary.

    summary.json marks a finished run: a write that fails before it leaves a folder that reads as interrupted.
    `outcome` is successive halving's (`pgjax.running.halving.HalvingOutcome`), None for a plain sweep, whose
    `results` are one per compile group; `spec` the environment's `EnvSpec` (its solve threshold, and what
    `pgjax.results.health.run_warnings` looks at for summary.json's "warnings"); `start` the
    `time.perf_counter()` wall_seconds counts from; `confirmation` summary.json's "confirmation"
    (`pgjax.results.confirmation.confirmation_fields`), None without one.
    """
    import jax

    from pgjax.results.exports import write_exports
    from pgjax.results.health import run_warnings
    from pgjax.results.plots import plot_summary  # matplotlib: only here
    from pgjax.results.summary import summarise

    by_point = {}
    for result, compile_group in zip(results, groups if outcome is None else [[p] for p in points]):
        for i, point in enumerate(compile_group):
            rows = slice(i * num_seeds, (i + 1) * num_seeds)
            by_point[point.index] = (jax.tree.map(lambda x: x[rows], result.metrics),
                                     jax.tree.map(lambda x: x[rows], result.state.params), result.seeds[rows])
    ordered = [by_point[i] for i in range(len(points))]
    metrics = [m for m, _, _ in ordered]
    outputs.write_metrics(out / METRICS_FILE, metrics, [s for _, _, s in ordered])
    outputs.write_params(out / PARAMS_FILE, [p for _, p, _ in ordered])
    timings["wall_seconds"] = time.perf_counter() - start  # summary.json, written last, is all that is left
    summary = summarise(points, num_seeds, preset, results, timings, spec.solve_threshold, search=search,
                        halving=outcome)
    if confirmation is not None:
        summary["confirmation"] = confirmation
    summary["warnings"] = run_warnings(metrics, spec)  # lines: what looks like a run that cannot learn
    write_exports(out, summary, metrics)
    plot_summary(out, summary, metrics)
    outputs.write_json(out / SUMMARY_FILE, summary)
    return summary
