"""A run folder is read inside itself: a file or folder of it that is a symbolic link leading outside is refused.

A run folder may come from anywhere (a downloaded results bundle), and a link in it
(`summary.json -> /etc/passwd`, `checkpoints -> ~/elsewhere`) would make pgjax read,
write or delete what the folder does not hold. Every reader of a run folder's
files asks `inside` first (`pgjax.running.run_folder.loading.run_file` for a
finished run's; resuming asks `tree_inside` of its checkpoints); a link that stays
inside the folder is followed as any file is.
"""

from __future__ import annotations

import os
from pathlib import Path


def inside(run_dir: str | Path, path: str | Path) -> Path:
    """`path`, a file or folder of the run folder `run_dir`, once no symbolic link on the way to it leads outside.

    Raises:
      ValueError: one line naming the link (the first on the way that leads outside) and where it leads.
    """
    run_dir, path = Path(run_dir), Path(path)
    root = run_dir.resolve()
    if path.resolve().is_relative_to(root):
        return path
    step = run_dir
    for part in path.relative_to(run_dir).parts:
        step = step / part
        if step.is_symlink() and not step.resolve().is_relative_to(root):
            raise ValueError(f"{step} is a symlink leading outside the run folder (to {step.resolve()}); pgjax "
                             "reads and writes a run folder only inside it: replace the link by a copy of what it "
                             "leads to")
    raise ValueError(f"{path} leads outside the run folder {run_dir}; pgjax reads and writes a run folder only "
                     "inside it")


def tree_inside(run_dir: str | Path, folder: str | Path) -> None:
    """`inside` for `folder` and every file and folder under it (links are checked, not followed).

    Raises:
      ValueError: as `inside`.
    """
    folder = inside(run_dir, folder)
    for root, dirs, names in os.walk(folder):
        for name in [*dirs, *names]:
            if (Path(root) / name).is_symlink():
                inside(run_dir, Path(root) / name)
