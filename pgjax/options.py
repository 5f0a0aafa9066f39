"""The old path of `pgjax.commands.options`: importing it gives that module.

`pgjax.options is pgjax.commands.options`, so that `from pgjax.options import ...` keeps working.
"""

import sys

import pgjax.commands.options

sys.modules[__name__] = pgjax.commands.options
