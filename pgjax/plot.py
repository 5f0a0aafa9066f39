"""`python -m pgjax.plot`: the command lives in `pgjax.commands.plot`; this module is its old path.

Run as `python -m pgjax.plot`, it runs that module as `__main__` (XLA set up
before JAX starts, as there); imported, it is that module (`pgjax.plot is
pgjax.commands.plot`), so that `from pgjax.plot import ...` keeps working.
"""

import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("pgjax.commands.plot", run_name="__main__", alter_sys=True)
else:
    import pgjax.commands.plot

    sys.modules[__name__] = pgjax.commands.plot
