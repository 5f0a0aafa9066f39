"""The algorithm: REINFORCE as pure functions of arrays (no files, no printing, no devices).

Read `pgjax.algo.trainer` first: one update, top to bottom. It is built on
`config` and `presets` (what to train), `envs` (gymnax environments),
`networks` and `distributions` (the policy), `rollout` (collect episodes),
`returns` (the registries of returns, baselines, advantages and reductions),
`baselines` (per-step weights, and the learned value baseline) and `loss` (the
policy gradient). `speed` switches the speed devices (`batching`, `dense` and
parts of the others) against the plain reference path.
"""
