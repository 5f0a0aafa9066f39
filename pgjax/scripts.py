"""The old path of `pgjax.commands.scripts`: importing it gives that module.

`pgjax.scripts is pgjax.commands.scripts`, so that `from pgjax.scripts import ...` keeps working.
"""

import sys

import pgjax.commands.scripts

sys.modules[__name__] = pgjax.commands.scripts
