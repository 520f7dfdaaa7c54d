"""The label sets shared by every module: one order, used everywhere (manifests store names)."""

EMOTIONS: tuple[str, ...] = ("ang", "hap", "neu", "sad")
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

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
