"""Label anchors for LCL: one fixed vector per emotion class, from the label word.

Paper III-D-2: "We use the roberta-base model to extract the features E_i of the text labels".
What we do: each class name becomes an English word (hcld.labels.anchor_text: ang -> "angry",
a label word outside hcld.labels.LABEL_WORDS is its own text), the word is encoded by
RoBERTa as "<s> word </s>" and its vector is the mean of the last hidden states over the word's
own tokens (special tokens excluded). How the fixed 768-d vectors meet X_e's size is
`TrialConfig.anchor_projection`: "learned" maps them with a trainable Linear (the anchors become
free class prototypes), "fixed" embeds them isometrically (`embed_isometrically`: the label
vectors' cosines are kept exactly, so the anchors stay the benchmark the paper describes).

Sources (`TrialConfig.anchor_source`):
- "roberta": a local roberta-base folder (`roberta_path`); never downloaded (HF_HUB_OFFLINE);
- "fallback": seeded random orthonormal vectors of the same size, labelled "fallback:orthogonal"
  in results (no semantics: only the learnable projection shapes them);
- "auto": "roberta" when `roberta_path` is set, else "fallback".
One vector per class of the trial's label set (IEMOCAP: four), cached in-process and on disk
(<cache>/anchors/<key>.pt, key = hash of the label words, the model folder's small files and its
weight files' names and sizes).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from hcld.errors import MissingAssetError
from hcld.fileio import atomic_path
from hcld.labels import EMOTIONS, anchor_text

FALLBACK_DIM = 768  # roberta-base's hidden size: both sources give the model the same shapes
FALLBACK_SEED = 20250406
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".h5", ".msgpack")
HOW_TO_GET = (
    "LCL needs a local roberta-base folder (config.json, model.safetensors or pytorch_model.bin, "
    "vocab.json + merges.txt or tokenizer.json). On a machine with network: "
    "`huggingface-cli download roberta-base --local-dir <folder>` (or "
    "AutoModel/AutoTokenizer.from_pretrained('roberta-base').save_pretrained(<folder>)), copy the "
    "folder here and pass it as roberta_path; or use anchor_source='fallback'."
)

_memory_cache: dict[str, torch.Tensor] = {}


@dataclass(frozen=True)
class LabelAnchors:
    vectors: torch.Tensor  # [K, dim] float32, in the order of the labels asked for
    source: str  # "roberta:<path>" | "fallback:orthogonal"


def load_label_anchors(
    anchor_source: str, roberta_path: str | os.PathLike | None, *, labels: tuple[str, ...] = EMOTIONS,
    cache_dir: Path | None = None,
) -> LabelAnchors:
    """The anchors of `anchor_source` (auto | roberta | fallback, checked by TrialConfig), one per label."""
    if anchor_source == "fallback" or (anchor_source == "auto" and roberta_path is None):
        return LabelAnchors(fallback_anchors(len(labels)), "fallback:orthogonal")
    if roberta_path is None:
        raise MissingAssetError(f"anchor_source='roberta' but no roberta_path is set. {HOW_TO_GET}")
    path = Path(roberta_path).expanduser().resolve()
    return LabelAnchors(roberta_anchors(path, labels, cache_dir=cache_dir), f"roberta:{path}")


def embed_isometrically(anchors: torch.Tensor, dim: int) -> torch.Tensor:
    """[K, D] anchors -> [K, dim] vectors with exactly the same inner products (so the same norms
    and cosines), for dim >= K: coordinates in an orthonormal basis of the anchors' span (SVD),
    zero-padded. The rotation this picks is arbitrary but fixed; X_e is learned, so only the
    anchors' geometry matters, and that is the label words' own."""
    k = anchors.shape[0]
    if dim < k:
        raise ValueError(f"cannot embed {k} anchors isometrically in {dim} dimensions (need >= {k})")
    u, sv, _ = torch.linalg.svd(anchors.double(), full_matrices=False)  # anchors = U diag(S) V^T
    coords = u * sv  # [K, K]: anchors @ V, the coordinates in the span's basis V
    return torch.nn.functional.pad(coords, (0, dim - coords.shape[1])).to(anchors.dtype)


def fallback_anchors(k: int = len(EMOTIONS), dim: int = FALLBACK_DIM, seed: int = FALLBACK_SEED) -> torch.Tensor:
    """k orthonormal vectors (QR of a seeded Gaussian): equidistant, meaningless."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, k, generator=g, dtype=torch.float64))
    return q.T.float().contiguous()


def roberta_anchors(path: Path, labels: tuple[str, ...] = EMOTIONS, *, cache_dir: Path | None = None) -> torch.Tensor:
    _check_folder(path)
    key = _folder_key(path, labels)
    if key in _memory_cache:
        return _memory_cache[key].clone()
    cache_file = _cache_root(cache_dir) / f"{key}.pt"
    if cache_file.is_file():
        vectors = torch.load(cache_file, weights_only=True)
    else:
        vectors = _encode_words(path, [anchor_text(label) for label in labels])
        try:
            with atomic_path(cache_file) as tmp:
                torch.save(vectors, tmp)
        except OSError:
            pass  # the cache is an optimisation: an unwritable cache dir must not fail a trial
    _memory_cache[key] = vectors
    return vectors.clone()


def _cache_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir) / "anchors"
    base = os.environ.get("HCLD_CACHE_DIR") or Path.home() / ".cache" / "hcld"
    return Path(base) / "anchors"


def _check_folder(path: Path) -> None:
    if not path.is_dir():
        raise MissingAssetError(f"RoBERTa folder {path} does not exist. {HOW_TO_GET}")
    if not (path / "config.json").is_file():
        raise MissingAssetError(f"RoBERTa folder {path} has no config.json. {HOW_TO_GET}")
    if not any(p.suffix in WEIGHT_SUFFIXES for p in path.iterdir()):
        raise MissingAssetError(
            f"RoBERTa folder {path} has no weight file ({', '.join(WEIGHT_SUFFIXES)}). {HOW_TO_GET}")


def _folder_key(path: Path, labels: tuple[str, ...]) -> str:
    h = hashlib.sha256("|".join(anchor_text(label) for label in labels).encode())
    for p in sorted(path.iterdir()):
        if not p.is_file():
            continue
        h.update(p.name.encode())
        if p.suffix in WEIGHT_SUFFIXES:  # weights are large: name + size stand for the content
            h.update(str(p.stat().st_size).encode())
        else:
            h.update(p.read_bytes())
    return h.hexdigest()[:24]


def _encode_words(path: Path, words: list[str]) -> torch.Tensor:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import RobertaModel, RobertaTokenizer

    try:
        tokenizer = RobertaTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure means the same thing to the user
        raise MissingAssetError(f"cannot load the RoBERTa tokenizer from {path}: {exc}. {HOW_TO_GET}") from exc
    try:
        model = RobertaModel.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise MissingAssetError(f"cannot load the RoBERTa model from {path}: {exc}. {HOW_TO_GET}") from exc
    model.eval()
    special = set(tokenizer.all_special_ids)
    vectors = []
    for word in words:
        ids = tokenizer(word)["input_ids"]
        content = [i for i, t in enumerate(ids) if t not in special]
        if not content or all(ids[i] == tokenizer.unk_token_id for i in content):
            raise MissingAssetError(
                f"the tokenizer in {path} cannot encode the label word {word!r} (vocabulary of "
                f"{len(tokenizer)} tokens, ids {ids}): empty or wrong tokenizer. {HOW_TO_GET}"
            )
        if max(ids) >= model.config.vocab_size:
            raise MissingAssetError(
                f"the tokenizer in {path} gives token id {max(ids)} but the model has only "
                f"{model.config.vocab_size} embeddings: tokenizer and model do not match. {HOW_TO_GET}"
            )
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        vectors.append(hidden[content].mean(dim=0))
    return torch.stack(vectors).float()
