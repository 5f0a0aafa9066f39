"""`python -m pgjax.compare`: runs `pgjax.commands.compare` as `__main__` (XLA set up there before JAX starts)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("pgjax.commands.compare", run_name="__main__", alter_sys=True)
