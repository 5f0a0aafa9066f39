"""Running the algorithm: devices and XLA setup, sharding over devices, memory, grids, sweeps in
segments and chunks, checkpoints and progress. Imports `pgjax.algo`, never `pgjax.results`."""
