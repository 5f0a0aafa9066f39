"""The algorithm: REINFORCE as pure functions of arrays (no files, no printing, no devices).

Read `pgjax.algo.trainer` first: one run's update, top to bottom. It is built on
`config` and `presets` (what to train), `envs` (gymnax environments),
`networks` and `distributions` (the policy), `rollout` (collect episodes),
`returns` (the registries of returns, baselines, advantages and reductions),
`baselines` (per-step weights, and the learned value baseline) and `loss` (the
losses and their plain gradients), each written for one run. The fast paths
(`pgjax.algo.fast`: the folded rollout, the blocked gradient, the feature-major
dense layers, im2col convolutions), switched by `pgjax.algo.fast.FastPaths`,
compute the same functions faster beside them; the plain modules do not import them.
"""
