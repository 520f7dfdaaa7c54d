"""Label anchors: the real RoBERTa loading code on a tiny random model, failures, fallback, cache."""

from __future__ import annotations

import os

import pytest
import torch

from hcld import anchors as A
from hcld.config import TrialConfig
from hcld.errors import ConfigError, MissingAssetError
from hcld.labels import EMOTIONS, LABEL_WORDS, anchor_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# every label word's text, and one label outside hcld.labels.LABEL_WORDS (its own text)
ANCHOR_TEXTS = [*LABEL_WORDS.values(), "amused"]
SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}


def _vocab(words=True):
    vocab = dict(SPECIALS)
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault("Ġ" + c, len(vocab))
    if words:
        for w in ANCHOR_TEXTS:
            vocab.setdefault(w, len(vocab))
    return vocab


def _merges_for(words):
    """Byte-level BPE merges that build each word left to right (a, an, ang, ... angry)."""
    merges, seen = [], set()
    for w in words:
        for i in range(1, len(w)):
            m = (w[:i], w[i])
            if m not in seen:
                seen.add(m)
                merges.append(m)
    return merges


def make_tiny_roberta(folder, *, vocab=None, merges=None, hidden=16, vocab_size=None):
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    vocab = _vocab() if vocab is None else vocab
    words = list(ANCHOR_TEXTS)
    if merges is None:
        merges = _merges_for(words)
        for a, b in merges:  # every intermediate piece must be in the vocabulary
            vocab.setdefault(a + b, len(vocab))
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges)
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=vocab_size or max(len(vocab), 5) + 2, hidden_size=hidden, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=40,
    )
    RobertaModel(config).eval().save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory):
    return make_tiny_roberta(tmp_path_factory.mktemp("roberta"))


def test_roberta_anchors_are_mean_hidden_states_of_the_label_words(tiny_roberta, tmp_path):
    from transformers import RobertaModel, RobertaTokenizer

    A._memory_cache.clear()
    got = A.load_label_anchors("roberta", tiny_roberta, cache_dir=tmp_path)
    assert got.source == f"roberta:{tiny_roberta.resolve()}"
    assert got.vectors.shape == (len(EMOTIONS), 16)
    tok = RobertaTokenizer.from_pretrained(str(tiny_roberta))
    model = RobertaModel.from_pretrained(str(tiny_roberta)).eval()
    for row, emotion in enumerate(EMOTIONS):
        ids = tok(anchor_text(emotion))["input_ids"]
        assert len(ids) == 3  # <s> word </s>: the merges build each word into one token
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        torch.testing.assert_close(got.vectors[row], hidden[1:-1].mean(0))
    assert not torch.allclose(got.vectors[0], got.vectors[1])


def test_any_label_set_gets_one_anchor_per_label_in_its_order(tiny_roberta, tmp_path):
    from transformers import RobertaModel, RobertaTokenizer

    labels = ("amused", "ang", "cal", "dis", "fea", "neu")  # "amused" is its own text
    got = A.load_label_anchors("roberta", tiny_roberta, labels=labels, cache_dir=tmp_path)
    assert got.vectors.shape == (6, 16)
    tok = RobertaTokenizer.from_pretrained(str(tiny_roberta))
    model = RobertaModel.from_pretrained(str(tiny_roberta)).eval()
    for row, text in enumerate(["amused", "angry", "calm", "disgusted", "fearful", "neutral"]):
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([tok(text)["input_ids"]])).last_hidden_state[0]
        torch.testing.assert_close(got.vectors[row], hidden[1:-1].mean(0))
    # the IEMOCAP set is its own cache key: its rows are its own words (ang -> "angry" is row 0 there)
    four = A.load_label_anchors("roberta", tiny_roberta, cache_dir=tmp_path)
    assert four.vectors.shape == (4, 16)
    torch.testing.assert_close(four.vectors[0], got.vectors[1])
    fallback = A.load_label_anchors("fallback", None, labels=labels).vectors
    torch.testing.assert_close(fallback @ fallback.T, torch.eye(6), atol=1e-5, rtol=0)


def test_auto_uses_roberta_when_a_path_is_given_and_fallback_otherwise(tiny_roberta, tmp_path):
    assert A.load_label_anchors("auto", tiny_roberta, cache_dir=tmp_path).source.startswith("roberta:")
    fb = A.load_label_anchors("auto", None)
    assert fb.source == "fallback:orthogonal"
    torch.testing.assert_close(fb.vectors @ fb.vectors.T, torch.eye(len(EMOTIONS)), atol=1e-5, rtol=0)
    torch.testing.assert_close(fb.vectors, A.load_label_anchors("fallback", tiny_roberta).vectors)


def test_anchor_vectors_are_cached_on_disk(tiny_roberta, tmp_path, monkeypatch):
    A._memory_cache.clear()
    first = A.roberta_anchors(tiny_roberta.resolve(), cache_dir=tmp_path)
    assert len(list((tmp_path / "anchors").glob("*.pt"))) == 1
    A._memory_cache.clear()

    def no_model(path):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(A, "_encode_words", no_model)
    torch.testing.assert_close(A.roberta_anchors(tiny_roberta.resolve(), cache_dir=tmp_path), first)


def test_missing_folder_or_files_say_what_to_download(tmp_path):
    with pytest.raises(MissingAssetError, match="does not exist.*roberta-base"):
        A.load_label_anchors("roberta", tmp_path / "nowhere")
    with pytest.raises(MissingAssetError, match="no config.json"):
        A.load_label_anchors("roberta", tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingAssetError, match="no weight file"):
        A.load_label_anchors("roberta", tmp_path)
    with pytest.raises(MissingAssetError, match="no roberta_path"):
        A.load_label_anchors("roberta", None)
    with pytest.raises(ConfigError, match="anchor_source"):
        TrialConfig(anchor_source="glove")  # a bad source never reaches the loader


def test_empty_tokenizer_is_detected(tmp_path):
    folder = make_tiny_roberta(tmp_path / "empty", vocab={}, merges=[])
    with pytest.raises(MissingAssetError, match="cannot encode the label word"):
        A.load_label_anchors("roberta", folder, cache_dir=tmp_path)


def test_tokenizer_without_the_words_is_detected(tmp_path):
    # only special tokens and letters that are not in any label word: everything maps to <unk>
    vocab = dict(SPECIALS) | {"q": 5, "x": 6}
    folder = make_tiny_roberta(tmp_path / "wrong", vocab=vocab, merges=[])
    with pytest.raises(MissingAssetError, match="empty or wrong tokenizer"):
        A.load_label_anchors("roberta", folder, cache_dir=tmp_path)


def test_tokenizer_larger_than_the_model_is_detected(tmp_path):
    folder = make_tiny_roberta(tmp_path / "mismatch", vocab_size=8)
    with pytest.raises(MissingAssetError, match="do not match"):
        A.load_label_anchors("roberta", folder, cache_dir=tmp_path)
