"""The command-line layer: one module per command, parse, call, print.

* `pgjax.commands.train`, `.evaluate`, `.plot`, `.compare`, `.bench`: the commands
  (`python -m pgjax.<command>`, `pgjax-<command>`);
* `pgjax.commands.shared`: what every command shares (XLA set up before JAX
  starts, parsing, consoles, stop requests, exit);
* `pgjax.commands.options`, `.grid_settings`, `.checks`: the training flags, the
  grid points they ask for, the checks of command-line values;
* `pgjax.commands.scripts`: the console scripts.

The modules `pgjax.train`, `pgjax.cli`, `pgjax.options`, ... are their old paths.
"""
