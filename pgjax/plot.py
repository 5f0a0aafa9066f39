"""`python -m pgjax.plot`: runs `pgjax.commands.plot` as `__main__` (XLA set up there before JAX starts)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("pgjax.commands.plot", run_name="__main__", alter_sys=True)
