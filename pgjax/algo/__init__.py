"""The algorithm: REINFORCE as pure functions of arrays (no files, no printing, no devices).

Read `pgjax.algo.trainer` first: one update, top to bottom. It is built on
`config` and `presets` (what to train), `envs` (gymnax environments),
`networks` and `distributions` (the policy), `rollout` (collect episodes),
`returns` (per-step weights) and `loss` (the policy gradient).
"""
