"""`python -m pgjax.gradients`: runs `pgjax.commands.gradients` as `__main__` (XLA set up there before JAX starts)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("pgjax.commands.gradients", run_name="__main__", alter_sys=True)
