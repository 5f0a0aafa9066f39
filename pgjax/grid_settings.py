"""The old path of `pgjax.commands.grid_settings`: importing it gives that module.

`pgjax.grid_settings is pgjax.commands.grid_settings`, so that `from pgjax.grid_settings import ...` keeps working.
"""

import sys

import pgjax.commands.grid_settings

sys.modules[__name__] = pgjax.commands.grid_settings
