"""Corpus readers: one module per corpus, each a tree (or metadata file) -> manifest.parquet.

Every reader ends in hcld.data.manifest.write_manifest; `hcld.data.corpora.registry` maps the
names below to them for `--corpus NAME`. The names live here, apart from the readers, so command
lines can offer them without importing any reader.
"""

CORPUS_NAMES: tuple[str, ...] = ("iemocap", "ravdess", "crema-d", "emodb", "emobox", "manifest")
