"""The old path of `pgjax.commands.checks`: importing it gives that module.

`pgjax.checks is pgjax.commands.checks`, so that `from pgjax.checks import ...` keeps working.
"""

import sys

import pgjax.commands.checks

sys.modules[__name__] = pgjax.commands.checks
