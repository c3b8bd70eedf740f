"""Archive-scale analysis on Dask: every recording of a cohort a task, results streamed into one table.

``sources`` turns a folder, a glob or a manifest into items; ``cluster`` connects to (or starts) a Dask cluster on
127.0.0.1 with private TLS; ``task`` analyses one item inside a worker; ``table`` keeps the rows, resumable by the
recording's content hash; ``report`` writes the cohort summary; ``runner`` strings them together for ``analyze``.
"""
