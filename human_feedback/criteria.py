"""The four rating criteria of paper section III-D, with the rubric annotators see.

Each criterion is rated 1-5 per candidate. The definitions and grading standards below are shown on the
annotation page and served by the API, so people and documentation read the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_RATING = 1
MAX_RATING = 5


@dataclass(frozen=True)
class Criterion:
    """One rating function: a key used in the store and API, a short code used in weights, and the rubric."""

    key: str
    code: str
    title: str
    question: str
    definition: str
    levels: tuple[str, str, str, str, str]


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        key="empathy",
        code="emp",
        title="Empathy",
        question="Does the listener share and track the speaker's feelings?",
        definition=(
            "How well the listener's emotional intensity follows the speaker's: it rises when the speaker "
            "becomes animated or upset and settles when the speaker calms, a fraction of a second later."
        ),
        levels=(
            "No emotional connection: the face ignores the speaker's feelings or shows the opposite.",
            "Rarely reacts to the speaker's feelings; reactions are weak or badly timed.",
            "Follows the broad mood but misses changes or overdoes them.",
            "Follows most emotional changes with fitting intensity and timing.",
            "Clearly shares the speaker's feelings throughout, with natural timing and intensity.",
        ),
    ),
    Criterion(
        key="appropriateness",
        code="app",
        title="Appropriateness",
        question="Is the expression the right kind of response to what the speaker shows and says?",
        definition=(
            "Whether the emotion on the listener's face fits the situation and social norms: concern for "
            "sad news, disgust at something disgusting, a smile at good news. Smiling at sadness or disgust "
            "is inappropriate however pleasant it looks."
        ),
        levels=(
            "Wrong or offensive response (e.g. smiling at bad news) for most of the clip.",
            "Often the wrong kind of response, or a generic expression unrelated to the content.",
            "Mostly neutral or mixed: some fitting, some unfitting responses.",
            "Fitting responses most of the time, with minor lapses.",
            "Consistently the response a considerate person would give.",
        ),
    ),
    Criterion(
        key="engagement",
        code="eng",
        title="Engagement",
        question="Does the listener appear attentive and involved in the conversation?",
        definition=(
            "Signs of active listening: nods, brow raises and other backchannels at the speaker's pauses "
            "and phrase ends; gaze and head orientation toward the speaker; never a frozen or absent face."
        ),
        levels=(
            "Absent: frozen or disconnected face, no reaction to the speaker.",
            "Occasional reactions, mostly passive.",
            "Attentive but sparse or mistimed feedback.",
            "Regular, well-timed feedback at pauses and phrase ends.",
            "Highly involved: timely, varied feedback throughout.",
        ),
    ),
    Criterion(
        key="naturalness",
        code="nat",
        title="Naturalness",
        question="Does the listener move like a real person?",
        definition=(
            "Smooth, plausible facial and head motion within the range of real faces: no jitter, popping, "
            "freezing, exaggerated or impossible poses, and not a mirror-image copy of the speaker."
        ),
        levels=(
            "Clearly artificial: jitter, frozen frames, impossible or extreme poses.",
            "Frequent unnatural moments.",
            "Acceptable overall with noticeable glitches or stiffness.",
            "Natural with rare small glitches.",
            "Indistinguishable from a real listener's motion.",
        ),
    ),
)

CRITERION_KEYS: tuple[str, ...] = tuple(c.key for c in CRITERIA)
CODE_TO_KEY: dict[str, str] = {c.code: c.key for c in CRITERIA}


def rubric() -> list[dict]:
    """The rubric as plain dicts (served to the annotation page)."""
    return [
        {
            "key": c.key,
            "code": c.code,
            "title": c.title,
            "question": c.question,
            "definition": c.definition,
            "levels": list(c.levels),
        }
        for c in CRITERIA
    ]


def parse_weights(text: str | None) -> dict[str, float]:
    """Parse ``emp=..,app=..,eng=..,nat=..`` into criterion weights (paper eq. 10).

    Omitted text gives equal weights. Every weight must lie in [0, 1] and they must sum to 1.

    Raises:
        ValueError: with what was wrong and the expected form.
    """
    if text is None or not text.strip():
        return {k: 1.0 / len(CRITERIA) for k in CRITERION_KEYS}
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        key = CODE_TO_KEY.get(name, name if name in CRITERION_KEYS else None)
        if not sep or key is None:
            raise ValueError(
                f"weights: cannot read {part.strip()!r}; expected emp=..,app=..,eng=..,nat=.. "
                f"(codes {', '.join(CODE_TO_KEY)})"
            )
        if key in weights:
            raise ValueError(f"weights: {name!r} given twice")
        try:
            weights[key] = float(value)
        except ValueError:
            raise ValueError(f"weights: {name}={value!r} is not a number") from None
    return validate_weights(weights)


def validate_weights(weights: dict[str, float]) -> dict[str, float]:
    """Check criterion weights: all four present, each in [0, 1], summing to 1 (tolerance 1e-6)."""
    missing = [c.code for c in CRITERIA if c.key not in weights]
    unknown = [k for k in weights if k not in CRITERION_KEYS]
    if missing or unknown:
        raise ValueError(
            f"weights: expected exactly emp, app, eng, nat; missing {missing or 'none'}, unknown {unknown or 'none'}"
        )
    for key, value in weights.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"weights: {key}={value} is outside [0, 1]")
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1 (paper eq. 10), found {total:.6g}; rescale them")
    return {k: float(weights[k]) for k in CRITERION_KEYS}
