"""`python -m pgjax.plot`: learning curves of one or more run folders.

    python -m pgjax.plot runs/DIR                       # -> runs/DIR/learning_curves.png
    python -m pgjax.plot runs/A runs/B --out ab.png     # every group of every folder in one figure
    python -m pgjax.plot runs/A --out figures/          # an existing folder: -> figures/learning_curves.png
    python -m pgjax.plot runs/A --out curves.pdf        # the format its suffix names
    python -m pgjax.plot runs/A --metric gradient_snr   # another per-update metric -> learning_curves_gradient_snr.png

The figure goes exactly to the file given (a name without an image suffix is
refused, not added to), and over an existing file only if that is an image of
the same format (`pgjax.commands.outputs`); the command names the file it wrote.
The figures are `pgjax.results.plots`'s; this module parses, calls and prints.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import tyro

from pgjax.algo.config import setting
from pgjax.commands.outputs import check_output_file, image
from pgjax.commands.process import run_command
from pgjax.commands.shared import FOLDER_ERRORS, folder_error, parse
from pgjax.results.stats import Statistic

# `pgjax.results.plots.METRICS`' names (that module imports matplotlib, which --help does not need)
Metric = Literal["return", "length", "loss", "entropy", "grad_norm", "value_loss", "explained_variance",
                 "gradient_variance", "gradient_snr", "gradient_cosine"]


@dataclasses.dataclass
class Args:
    """Plot learning curves (return against env steps over runs) of one or more run folders."""

    dirs: tyro.conf.Positional[tuple[Path, ...]] = setting(dataclasses.MISSING,
                                                           "Run folders written by `python -m pgjax.train`.")
    out: Path | None = setting(None, "Image to write, in the format its suffix names (.png, .pdf, .svg, ...; an "
                                     "existing file only if it is such an image; an existing folder: "
                                     "learning_curves.png inside it); default DIR/learning_curves.png for one folder, "
                                     "./learning_curves.png for several (learning_curves_mean.png for "
                                     "--statistic mean).")
    statistic: Statistic = setting("iqm", "Line drawn over runs: interquartile mean or mean (the band is its 95% "
                                          "bootstrap interval).")
    metric: Metric = setting("return", "Per-update metric drawn (the curves' column; gradient_*: runs trained with "
                                       "--gradient-stats); another than return goes to learning_curves_<metric>.png.")


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(Args, argv, "pgjax.plot", __doc__.split("\n")[0])
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    from pgjax.results.plots import figure_path, image_format_of, plot_folders
    from pgjax.running.run_folder.files import PLOT_FILE
    from pgjax.running.run_folder.loading import check_run_dir

    try:
        if not args.dirs:
            raise ValueError("give at least one run folder")
        for run_dir in args.dirs:  # a missing or interrupted run is named before --out
            check_run_dir(run_dir)
        # the mean's figure beside the IQM's that train wrote, not over it
        suffixes = ([] if args.metric == "return" else [args.metric]) + ([] if args.statistic == "iqm"
                                                                          else [args.statistic])
        name = "_".join([Path(PLOT_FILE).stem, *suffixes]) + Path(PLOT_FILE).suffix
        out = figure_path(args.out or (args.dirs[0] / name if len(args.dirs) == 1 else Path(name)), name)
        check_output_file("--out", out, image(image_format_of(out)))
        path = plot_folders(args.dirs, out, statistic=args.statistic, metric=args.metric)
    except FOLDER_ERRORS as error:
        return folder_error(error)
    print(f"learning curves in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
