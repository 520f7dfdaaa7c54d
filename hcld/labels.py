"""The label vocabulary shared by every module (manifests store label words, trials class indices).

A corpus' label set is its own (hcld.data.manifest.emotion_names: the sorted label words of its
manifest); EMOTIONS is IEMOCAP's, the paper's four classes, and the default where a trial's data
carries no label set.
"""

EMOTIONS: tuple[str, ...] = ("ang", "hap", "neu", "sad")
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

# The label words corpus readers map their raw labels to (EmoBox's three-letter style), and the
# word each stands for: LCL's anchor text (hcld.anchors). A label outside this table (a manifest
# of one's own) is its own anchor text.
LABEL_WORDS: dict[str, str] = {
    "ang": "angry", "hap": "happy", "neu": "neutral", "sad": "sad", "fea": "fearful", "dis": "disgusted",
    "sur": "surprised", "cal": "calm", "bor": "bored", "con": "contemptuous", "fru": "frustrated",
    "exc": "excited",
}


def anchor_text(label: str) -> str:
    """The word LCL embeds for a label (the label itself when it is not in LABEL_WORDS)."""
    return LABEL_WORDS.get(label, label.replace("_", " "))

# IEMOCAP's raw labels that we keep, and what they become ("exc" is merged into "hap", as in the paper).
IEMOCAP_LABEL_MAP: dict[str, str] = {"ang": "ang", "hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad"}

# Class counts of the paper's 5531-utterance IEMOCAP subset (section IV-A).
IEMOCAP_COUNTS: dict[str, int] = {"ang": 1084, "hap": 1636, "neu": 1708, "sad": 1103}

SESSIONS: tuple[str, ...] = tuple(f"Ses0{i}" for i in range(1, 6))
SAMPLE_RATE = 16_000
CLIP_SECONDS = 7.5  # every utterance is trimmed / zero-padded to this length (paper IV-A)


class PaperShapes:
    """The paper's tensor and corpus sizes (Sec. IV), for benchmarks that time its setting."""

    BATCH = 32  # IV-B
    FRAMES = 374  # a 7.5 s clip at HuBERT's 20 ms hop (400-sample receptive field)
    FEATURE_DIM = 768  # HuBERT-Base hidden size
    UTTERANCES = sum(IEMOCAP_COUNTS.values())  # 5531
    TRAIN_UTTERANCES = 4424  # 80 % of 5531 (one random5 fold)
    TEST_UTTERANCES = UTTERANCES - TRAIN_UTTERANCES  # 1107
    SPEAKERS = 2 * len(SESSIONS)  # 10: a woman and a man per session
