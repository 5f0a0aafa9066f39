"""The old path of `pgjax.commands.shared`: importing it gives that module.

`pgjax.cli is pgjax.commands.shared`, so that `from pgjax.cli import ...` keeps working.
"""

import sys

import pgjax.commands.shared

sys.modules[__name__] = pgjax.commands.shared
