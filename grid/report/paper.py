"""The paper's Table I and Table II, transcribed as data (Li et al., ICASSP 2025, HCLD).

Numbers are percentages exactly as printed; `None` stands for the paper's "-" (not reported).
Row names are the paper's own. Our variant / backbone names map onto them so the report can put
our runs next to the printed numbers; rows the paper does not label are kept but never compared.

Every number here is on IEMOCAP's four classes: the report prints them only beside a setting whose
corpus is IEMOCAP or the built-in synthetic stand-in of it, with those four classes
(`compares_with_paper`), never beside another corpus or another label set of IEMOCAP's (a
--label-map that keeps fru, say, is another task). The paper prints accuracies only
(hcld.metrics.ACCURACIES); any other metric of ours (e.g. macro-F1) has no paper value
(`paper_value` gives None, shown as the paper's "-").
"""

from __future__ import annotations

from dataclasses import dataclass

from hcld.data.corpora import CORPUS_NAMES
from hcld.labels import EMOTIONS
from hcld.metrics import ACCURACIES

# The corpus every number of the paper is on: its name among hcld.data.corpora.CORPUS_NAMES (the
# trial rows' `corpus`), and the label prefix of the built-in synthetic corpus, which hcld.pipeline
# writes in IEMOCAP's layout with its four classes: a stand-in the demo grids compare with the paper
# (under the protocol's "not IEMOCAP" warning).
PAPER_CORPUS = "iemocap"
STAND_IN_PREFIX = "synthetic"  # hcld.pipeline labels it "synthetic(seed=...,n=...)"
assert PAPER_CORPUS in CORPUS_NAMES, CORPUS_NAMES


def compares_with_paper(corpus: str | None, emotions: str | None = None) -> bool:
    """Whether a setting on this corpus, with these classes (a row's `emotions`; None: written
    before rows named them, when every corpus had the paper's four), is shown beside the paper's
    numbers."""
    on_corpus = corpus is not None and (corpus == PAPER_CORPUS or corpus.startswith(STAND_IN_PREFIX))
    return on_corpus and (not emotions or sorted(emotions.split(",")) == sorted(EMOTIONS))

# Our names -> the paper's row names (Table II "Type" and "Model" columns).
VARIANT_LABELS: dict[str, str] = {
    "emo_only": "EMO-only",
    "orth": "orth",
    "wo_supcon": "wo.SupCon",
    "wo_lcl": "wo.LCL",
    "hcld": "HCLD",
}
BACKBONE_LABELS: dict[str, str] = {"cnn": "CNN", "lstm": "LSTM", "transformer": "Transformer"}
PAPER_VARIANTS: tuple[str, ...] = tuple(VARIANT_LABELS)
PAPER_BACKBONES: tuple[str, ...] = tuple(BACKBONE_LABELS)


@dataclass(frozen=True)
class AblationRow:
    """One printed row of Table II. `variant`/`backbone` are ours; None where the paper is unlabelled."""

    type: str  # the paper's "Type" cell ("" where the paper leaves it empty)
    model: str  # the paper's "Model" cell
    emo_wa: float | None
    emo_ua: float | None
    spk_wa: float | None
    spk_ua: float | None
    variant: str | None
    backbone: str | None
    comparable: bool = True
    note: str = ""


@dataclass(frozen=True)
class ComparisonRow:
    """One printed row of Table I."""

    model: str
    ref: str  # citation number in the paper, e.g. "[25]"; "" for the paper's own rows
    wa: float | None
    ua: float | None
    backbone: str | None = None  # ours, for the paper's own HCLD rows
    citation: str = ""


STRAY_ROW_NOTE = (
    "unlabelled CNN row printed between wo.SupCon and wo.LCL in the paper's Table II; "
    "kept as data, excluded from every comparison"
)


def _row(variant: str, backbone: str, *values: float | None) -> AblationRow:
    return AblationRow(VARIANT_LABELS[variant], BACKBONE_LABELS[backbone], *values, variant, backbone)


# Table II, "ABLATION STUDY", in the printed order.
TABLE_II: tuple[AblationRow, ...] = (
    _row("emo_only", "cnn", 70.84, 71.61, None, None),
    _row("emo_only", "lstm", 70.13, 70.95, None, None),
    _row("emo_only", "transformer", 68.03, 68.73, None, None),
    _row("orth", "cnn", 73.35, 74.04, 74.04, 74.83),
    _row("orth", "lstm", 74.44, 75.24, 78.67, 78.48),
    _row("orth", "transformer", 70.67, 71.50, 81.66, 81.52),
    _row("wo_supcon", "cnn", 74.35, 74.8, 81.57, 81.47),
    _row("wo_supcon", "lstm", 75.16, 75.71, 80.94, 80.77),
    _row("wo_supcon", "transformer", 71.18, 72.02, 81.84, 81.69),
    AblationRow("", "CNN", 75.03, 74.27, 74.98, 75.01, None, None, comparable=False, note=STRAY_ROW_NOTE),
    _row("wo_lcl", "cnn", 75.88, 76.51, 84.46, 84.27),
    _row("wo_lcl", "lstm", 75.43, 75.78, 77.6, 77.69),
    _row("wo_lcl", "transformer", 72.99, 73.62, 81.84, 81.72),
    _row("hcld", "cnn", 75.52, 76.08, 75.70, 75.90),
    _row("hcld", "lstm", 75.70, 75.90, 78.95, 79.00),
    _row("hcld", "transformer", 73.80, 74.59, 83.02, 82.72),
)

# Table I, "MODEL PERFORMANCE COMPARISONS ON THE IEMOCAP DATASET", in the printed order.
TABLE_I: tuple[ComparisonRow, ...] = (
    ComparisonRow("CNN-LSTM", "[25]", 65.4, 66.9, citation="Xia et al., Interspeech 2021"),
    ComparisonRow("LGFA", "[26]", 73.29, 62.63, citation="Lu et al., arXiv:2306.01491, 2023"),
    ComparisonRow("ATFNN", "[27]", 73.81, 64.48, citation="Lu et al., IEEE TCSS 2022"),
    ComparisonRow("TFF", "[28]", 74.43, 63.90, citation="Wang et al., ICONIP 2023"),
    ComparisonRow("TAP", "[29]", None, 74.2, citation="Gat et al., ICASSP 2022"),
    ComparisonRow("TAPT", "[30]", None, 74.3, citation="Chen & Rudnicky, ICASSP 2023"),
    ComparisonRow("HCLD-CNN", "", 75.52, 76.08, backbone="cnn"),
    ComparisonRow("HCLD-RNN", "", 75.70, 75.9, backbone="lstm"),
    ComparisonRow("HCLD-transformers", "", 73.80, 74.59, backbone="transformer"),
)


def paper_value(row: AblationRow | None, metric: str) -> float | None:
    """The paper's Table II number for one of our metrics (hcld.metrics), None where it prints "-",
    has no such row, or reports no such metric (it prints accuracies only)."""
    return getattr(row, metric) if row is not None and metric in ACCURACIES else None


def ablation_row(variant: str, backbone: str) -> AblationRow | None:
    """The comparable Table II row for our (variant, backbone), or None if the paper has none."""
    for row in TABLE_II:
        if row.comparable and row.variant == variant and row.backbone == backbone:
            return row
    return None
