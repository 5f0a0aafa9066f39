"""The algorithm: REINFORCE as pure functions of arrays (no files, no printing, no devices).

Read `pgjax.algo.trainer` first: one run's update, top to bottom. It is built on
`config` and `presets` (what to train), `envs` (environments as pgjax sees
them), `policy` (networks and action distributions), `rollout` (collect
episodes), `weights` (returns, baselines, advantages, reductions and the
learned value baseline) and `loss` (the losses and their plain gradients), each
written for one run. `pieces` is the one table that chooses each piece or its
fast path (`pgjax.algo.fast`: the folded rollout, the blocked gradient, the
feature-major dense layers, im2col convolutions), as `config.FastPaths` says;
the reference modules and the trainer never import the fast paths.
`validation` checks a config against the registries before training.
"""
