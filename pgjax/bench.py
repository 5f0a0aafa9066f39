"""`python -m pgjax.bench`: the command lives in `pgjax.commands.bench`; this module is its old path.

Run as `python -m pgjax.bench`, it runs that module as `__main__` (XLA set up
before JAX starts, as there); imported, it is that module (`pgjax.bench is
pgjax.commands.bench`), so that `from pgjax.bench import ...` keeps working.
"""

import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("pgjax.commands.bench", run_name="__main__", alter_sys=True)
else:
    import pgjax.commands.bench

    sys.modules[__name__] = pgjax.commands.bench
