"""Corpus side of the pipeline: audio reading, the IEMOCAP reader, the synthetic corpus, folds.

Modules are imported one by one on purpose (no re-exports here): hcld.data.audio needs only
numpy and soundfile, while the reader and folds need polars, which the GPU machines lack.
"""
