"""Results: the run folder's files, the summary.json contract, statistics over seeds, console tables,
plots and the evaluation of trained policies. Imports `pgjax.algo` and `pgjax.running`."""
