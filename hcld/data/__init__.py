"""Corpus side of the pipeline: audio reading, the manifest, corpus readers (corpora/), the synthetic corpus, folds.

Modules are imported one by one on purpose (no re-exports here): hcld.data.audio is on the trial
path, the reader and folds are not (the dependency rule, tests/test_packaging.py).
"""
