"""`python tests/late_process.py TRAIN_FLAGS...`: `python -m pgjax.train`, but the process of a multi-process run
whose PGJAX_PROCESS_ID is 1 looks for the chunks' checkpoint folders two seconds late, after process 0 has made
them for its training (tests/test_cli.py: every process must open the same checkpoints, whenever it looks)."""

import os
import runpy
import sys
import time

import jax

initialize = jax.distributed.initialize


def initialize_then_look_late(*args, **kwargs):
    """`jax.distributed.initialize`, then the late look put in place (pgjax's layers import gymnax, which
    starts JAX's backends, so they are imported only once the processes have joined)."""
    initialize(*args, **kwargs)
    from pgjax.running import sweep

    check_checkpoints = sweep.ChunkRunner.check_checkpoints

    def late_check_checkpoints(self, *args, **kwargs):
        time.sleep(2.0)
        return check_checkpoints(self, *args, **kwargs)

    sweep.ChunkRunner.check_checkpoints = late_check_checkpoints


if os.environ.get("PGJAX_PROCESS_ID") == "1":
    jax.distributed.initialize = initialize_then_look_late
sys.argv = ["pgjax.train", *sys.argv[1:]]
runpy.run_module("pgjax.train", run_name="__main__", alter_sys=True)
