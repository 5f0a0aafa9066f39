"""`python -m pgjax.compare`: the command lives in `pgjax.commands.compare`; this module is its old path.

Run as `python -m pgjax.compare`, it runs that module as `__main__` (XLA set up
before JAX starts, as there); imported, it is that module (`pgjax.compare is
pgjax.commands.compare`), so that `from pgjax.compare import ...` keeps working.
"""

import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("pgjax.commands.compare", run_name="__main__", alter_sys=True)
else:
    import pgjax.commands.compare

    sys.modules[__name__] = pgjax.commands.compare
