"""A run folder is data, never code: what it names is imported only when the user names it again.

A run trained with `--env package.module:factory`, `--network package.module:factory`,
`--weighting package.module:function` or `--step-loss package.module:function` records
those strings in its config.json and summary.json. Reading a folder back
(`pgjax.evaluate`, `pgjax.compare`, `pgjax.train --resume`, `pgjax.load_policy`)
never imports a module because one of its files says so, since a folder may come
from anywhere (a downloaded results bundle, with an `evil.py` beside it, is enough:
`python -m` puts the current folder on `sys.path`). Where the environment or the
network a folder names is code, the user names the same factory again (`--env`,
`--network` on the command line; `env=`, `network=` in Python) and `confirm` checks
that the two agree; so with a weighting or a loss of one's own when a run resumes
(`--weighting`, `--step-loss`), the only reads that import them. A gymnax id or a
registered network name builds only what pgjax (or the user's own
`register_network`) provides, and needs no confirmation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from pgjax.algo.config import Config
from pgjax.algo.imports import names_code

KINDS = {"env": ("environment", "--env", "env"), "network": ("network", "--network", "network"),
         "weighting": ("weighting", "--weighting", "weighting"), "step_loss": ("step loss", "--step-loss", "step_loss")}
OPTIONAL = ("weighting", "step_loss")  # "" (none of one's own) is their default


def confirm(recorded: Any, given: Collection[str], kind: str, source: str) -> str:
    """`recorded`, a folder's name of an environment or network, once it is safe to build.

    Args:
      recorded: the value the folder's file holds (untrusted: any JSON value).
      given: the names the user gave for this kind (`--env`, `--network`; `env=`, `network=` in Python).
      kind: a key of `KINDS`: "env", "network", "weighting" or "step_loss".
      source: the file that holds `recorded`, for the messages (e.g. "runs/x/summary.json").

    Returns:
      `recorded`, a string.

    Raises:
      ValueError: `recorded` is not a non-empty string (the file is damaged), or it
        names code ("package.module:factory") the user did not name again.
    """
    what, flag, keyword = KINDS[kind]
    recorded = _name(recorded, what, source)
    if names_code(recorded) and recorded not in given:
        raise ValueError(
            f"{source} names the {what} {'function' if kind in OPTIONAL else 'factory'} '{recorded}': pgjax "
            "imports no code a run folder names; if you "
            f"trust it, name it again ({flag} {recorded} on the command line, {keyword}='{recorded}' in Python)"
        )
    return recorded


def _name(recorded: Any, what: str, source: str) -> str:
    """`recorded` if it is a non-empty string; else ValueError (the file is damaged)."""
    if not isinstance(recorded, str) or not recorded:
        raise ValueError(f"{source} names the {what} {recorded!r}, which is not a name: the run folder is damaged")
    return recorded


def check_given(given: Iterable[str], recorded: Collection[str], kind: str, source: str) -> None:
    """Raise ValueError if the user named an environment or network (`given`) that the folder does not record.

    A factory named again must be the one the folder was trained with, letter for
    letter; a name given but not recorded is a mistake worth a line, not a silent no-op.
    """
    what, flag, _ = KINDS[kind]
    for name in given:
        if name not in recorded:
            listed = ", ".join(f"'{r}'" for r in sorted(recorded)) or "none"
            raise ValueError(f"{flag} {name} is not the {what} of {source}, which names {listed}")


def confirm_configs(configs: Iterable[Config], source: str, env: str | None = None,
                    networks: Collection[str] = (), weightings: Collection[str] = (),
                    step_losses: Collection[str] = ()) -> None:
    """Check every config read from a folder can be built: `confirm` its env, network, weighting and step
    loss, `check_given` the names.

    Args:
      configs: the folder's configs (e.g. one per group or grid point).
      source: the file they were read from, for the messages.
      env: the environment the user named again, or None.
      networks, weightings, step_losses: the networks, weightings and step losses the user named again.

    Raises:
      ValueError: as `confirm` and `check_given`.
    """
    configs = list(configs)
    for kind, given in (("env", () if env is None else (env,)), ("network", tuple(networks)),
                        ("weighting", tuple(weightings)), ("step_loss", tuple(step_losses))):
        recorded = [getattr(c.static, kind) for c in configs]
        if kind in OPTIONAL:  # none of one's own: nothing to build
            recorded = [name for name in recorded if name != ""]
        names = {_name(name, KINDS[kind][0], source) for name in recorded}
        check_given(given, names, kind, source)  # a factory named again that is not the folder's: say so first
        for name in names:
            confirm(name, given, kind, source)
