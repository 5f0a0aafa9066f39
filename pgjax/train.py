"""`python -m pgjax.train`: the command lives in `pgjax.commands.train`; this module is its old path.

Run as `python -m pgjax.train`, it runs that module as `__main__` (XLA set up
before JAX starts, as there); imported, it is that module (`pgjax.train is
pgjax.commands.train`), so that `from pgjax.train import ...` keeps working.
"""

import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("pgjax.commands.train", run_name="__main__", alter_sys=True)
else:
    import pgjax.commands.train

    sys.modules[__name__] = pgjax.commands.train
