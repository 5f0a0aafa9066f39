"""`python -m pgjax.bench`: runs `pgjax.commands.bench` as `__main__` (XLA set up there before JAX starts)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("pgjax.commands.bench", run_name="__main__", alter_sys=True)
