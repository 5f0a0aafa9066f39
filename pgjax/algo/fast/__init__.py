"""The fast paths: pieces of the update laid out for XLA, each with the per-run interface of the plain piece.

`pgjax.algo.pieces` chooses each piece, as `FastPaths` says; the reference
modules never import this package, and the trainer does not either:

* `rollout` (with `folded`): the rollout's `while_loop` over a whole batch of
  runs, which stops when the batch's longest episode ends (a vmap of the plain
  loop runs a batched predicate that copies every buffer per step), with
  run-major image buffers;
* `blocks` (with `recurrent` for recurrent networks): the policy gradient and
  the value network's values and gradient over blocks of runs and time slices
  up to each block's longest episode (the plain one differentiates every padded
  step up to the step limit);
* `networks`: the MLP's feature-major backward pass (no transposed copies of
  the activations for the weight gradients), and im2col convolutions (one
  matrix product rather than a grouped convolution under vmap).

What each fast path gains is measured by `experiments/fast_paths.py`
(docs/performance.md gives the figures).
"""
