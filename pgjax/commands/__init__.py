"""The command-line layer: one module per command, parse, call, print.

* `pgjax.commands.train`, `.evaluate`, `.plot`, `.compare`, `.bench`: the commands
  (`python -m pgjax.<command>`, `pgjax-<command>`);
* `pgjax.commands.shared`: what every command shares (its version, console, parsing,
  refusals of bad flags); `pgjax.commands.process`: the process (XLA set up before JAX
  starts, stop requests, exit);
* `pgjax.commands.options`, `.grid_settings`, `.checks`: the training flags, the
  grid points they ask for, the checks of command-line values;
* `pgjax.commands.outputs`: the files a command writes go exactly where they are
  asked to, over no file that is not the command's own;
* `pgjax.commands.scripts`: the console scripts.

`pgjax.train`, `pgjax.evaluate`, ... are only the `python -m` entry points: each runs
its command's module here as `__main__`.
"""
