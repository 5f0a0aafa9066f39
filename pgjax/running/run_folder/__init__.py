"""The run folder: what a training command leaves on disk, and what reads it back as data.

* `files`: the files' names, the marker, atomic writes, the writers of JSON,
  metrics and parameters, and preparing and clearing --out;
* `loading`: reading the files back, each checked as untrusted data;
* `links`: a folder is read inside itself: a link in it leading outside is refused;
* `trust`: a folder is data, never code: what it names is imported only when
  the user names it again;
* `lock`: one writer per folder;
* `checkpoints`: orbax checkpoints of every chunk of runs;
* `resume`: what resuming an interrupted run reads back and checks.

What a training command records and writes through these (config.json before
it trains, the results after) is `pgjax.results.run_record`.
"""
