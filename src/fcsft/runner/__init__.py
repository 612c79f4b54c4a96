"""The runner: runs the registered steps in order over the run directory, its only writer.

`run` runs one stage (ledger, markers, resuming), `executors` and `ray` say where a stage's
records are processed, `lock` keeps one process per run directory, and `pipeline` opens the
models and tools a step asks for and runs the steps of `fcsft.step`'s registry.
"""
