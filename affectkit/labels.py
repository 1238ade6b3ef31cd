"""The 8 expressions in AffectNet order, their name synonyms, and mappings from other datasets."""

from __future__ import annotations

EXPRESSIONS: tuple[str, ...] = (
    "Neutral",
    "Happy",
    "Sad",
    "Surprise",
    "Fear",
    "Disgust",
    "Anger",
    "Contempt",
)
NUM_EXPRESSIONS = len(EXPRESSIONS)

# AffectNet ids 8..10 are not expressions: left out of the expression task, counted in summaries.
AFFECTNET_NON_EXPRESSION = {8: "none", 9: "uncertain", 10: "no_face"}
# AffectNet marks an invalid valence/arousal with -2.
AFFECTNET_INVALID_VA = -2.0

_SYNONYMS = {
    "neutral": 0,
    "neutrality": 0,
    "calm": 0,
    "happy": 1,
    "happiness": 1,
    "joy": 1,
    "smile": 1,
    "sad": 2,
    "sadness": 2,
    "surprise": 3,
    "surprised": 3,
    "fear": 4,
    "fearful": 4,
    "afraid": 4,
    "scared": 4,
    "disgust": 5,
    "disgusted": 5,
    "anger": 6,
    "angry": 6,
    "mad": 6,
    "contempt": 7,
    "contemptuous": 7,
}

# FER+ vote columns, in label.csv order.
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
# FER+ emotion column index -> AffectNet id (the first 8 columns; unknown/NF have no id).
FERPLUS_TO_AFFECTNET: tuple[int, ...] = (0, 1, 3, 2, 6, 5, 4, 7)

# Other datasets' label codes -> AffectNet id (None: not an expression). Sources are in each reader's docstring.
# FER2013 and ExpW: 0 Angry 1 Disgust 2 Fear 3 Happy 4 Sad 5 Surprise 6 Neutral.
FER2013_TO_AFFECTNET = {0: 6, 1: 5, 2: 4, 3: 1, 4: 2, 5: 3, 6: 0}
EXPW_TO_AFFECTNET = FER2013_TO_AFFECTNET
# RAF-DB basic: 1 Surprise 2 Fear 3 Disgust 4 Happiness 5 Sadness 6 Anger 7 Neutral.
RAFDB_TO_AFFECTNET = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}
# CK+: 0 neutral 1 anger 2 contempt 3 disgust 4 fear 5 happy 6 sadness 7 surprise.
CKPLUS_TO_AFFECTNET = {0: 0, 1: 6, 2: 7, 3: 5, 4: 4, 5: 1, 6: 2, 7: 3}
# JAFFE file-name codes.
JAFFE_TO_AFFECTNET = {"NE": 0, "HA": 1, "SA": 2, "SU": 3, "FE": 4, "DI": 5, "AN": 6}
# Aff-Wild2 (ABAW) EXPR: 0 Neutral 1 Anger 2 Disgust 3 Fear 4 Happiness 5 Sadness 6 Surprise; 7 Other has no id.
AFFWILD2_TO_AFFECTNET = {0: 0, 1: 6, 2: 5, 3: 4, 4: 1, 5: 2, 6: 3, 7: None}


def expression_id(name: str | int) -> int:
    """AffectNet id of an expression name or synonym (case-insensitive), or of an id given as int/str.

    Raises KeyError naming the unknown label.
    """
    if isinstance(name, int):
        if 0 <= name < NUM_EXPRESSIONS:
            return name
        raise KeyError(f"expression id {name} is out of range 0..{NUM_EXPRESSIONS - 1}")
    key = str(name).strip().lower()
    if key.isdigit():
        return expression_id(int(key))
    if key in _SYNONYMS:
        return _SYNONYMS[key]
    raise KeyError(f"unknown expression name {name!r}; known: {', '.join(sorted(_SYNONYMS))}")


def expression_name(idx: int) -> str:
    return EXPRESSIONS[int(idx)]
