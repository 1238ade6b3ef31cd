"""The 8 expressions in AffectNet order, their name synonyms, and mappings from other datasets."""
from __future__ import annotations

EXPRESSIONS: tuple[str, ...] = (
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
)
NUM_EXPRESSIONS = len(EXPRESSIONS)

# AffectNet ids 8..10 are not expressions: left out of the expression task, counted in summaries.
AFFECTNET_NON_EXPRESSION = {8: "none", 9: "uncertain", 10: "no_face"}
# AffectNet marks an invalid valence/arousal with -2.
AFFECTNET_INVALID_VA = -2.0

_SYNONYMS = {
    "neutral": 0, "neutrality": 0, "calm": 0,
    "happy": 1, "happiness": 1, "joy": 1, "smile": 1,
    "sad": 2, "sadness": 2,
    "surprise": 3, "surprised": 3,
    "fear": 4, "fearful": 4, "afraid": 4, "scared": 4,
    "disgust": 5, "disgusted": 5,
    "anger": 6, "angry": 6, "mad": 6,
    "contempt": 7, "contemptuous": 7,
}

# FER+ vote columns, in label.csv order.
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)
# FER+ emotion column index -> AffectNet id (the first 8 columns; unknown/NF have no id).
FERPLUS_TO_AFFECTNET: tuple[int, ...] = (0, 1, 3, 2, 6, 5, 4, 7)


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
