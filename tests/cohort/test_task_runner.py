"""Simulated-corpus generation as tasks: only the subjects missing from the cache are tasks, and they return
nothing (each writes its subject to the cache), so no signal would pass through a Dask scheduler."""

from __future__ import annotations

import numpy as np

from models.datasets import simulated_corpus


def test_only_missing_subjects_become_tasks_and_the_corpus_is_the_same_as_in_process(tmp_path):
    batches: list[list[tuple]] = []
    returned: list = []

    def run_tasks(function, calls):
        batches.append(list(calls))
        returned.extend(function(*call) for call in calls)
        return returned

    corpus = simulated_corpus(1, duration_s=1.0, cache_dir=tmp_path, run_tasks=run_tasks)
    assert [(call[0], call[1]) for call in batches[0]] == [("healthy", 1000), ("myopathy", 1001),
                                                          ("neuropathy", 1002)]
    assert returned == [None, None, None]
    again = simulated_corpus(1, duration_s=1.0, cache_dir=tmp_path, run_tasks=run_tasks)
    assert batches[1] == []  # all three cached now
    direct = simulated_corpus(1, duration_s=1.0, cache_dir=None)
    assert np.array_equal(corpus.windows, direct.windows) and np.array_equal(again.windows, direct.windows)
    assert np.array_equal(corpus.labels, direct.labels)
