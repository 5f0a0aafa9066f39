"""`python -m pgjax.evaluate`: the command lives in `pgjax.commands.evaluate`; this module is its old path.

Run as `python -m pgjax.evaluate`, it runs that module as `__main__` (XLA set up
before JAX starts, as there); imported, it is that module (`pgjax.evaluate is
pgjax.commands.evaluate`), so that `from pgjax.evaluate import ...` keeps working.
"""

import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("pgjax.commands.evaluate", run_name="__main__", alter_sys=True)
else:
    import pgjax.commands.evaluate

    sys.modules[__name__] = pgjax.commands.evaluate
