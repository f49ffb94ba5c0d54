"""Emotion prototypes drive the right blendshapes and can be read back; lexicons are disjoint."""

from __future__ import annotations

import numpy as np
import pytest

from dyadic_env.expression_basis import ict_index
from dyadic_env.synthetic import estimate_affect, read_emotions
from dyadic_env.synthetic.emotions import (
    DISPLAY_EMOTIONS,
    LISTENER_EMOTIONS,
    PROTOTYPES,
    RESPONSE_FIT,
    SPEAKER_EMOTIONS,
    prototype,
)
from dyadic_env.synthetic.lexicon import FILLERS, LEXICONS, word_emotion


def _face(**intensities: float) -> np.ndarray:
    frame = np.zeros(56)
    for emotion, k in intensities.items():
        frame[:50] += k * prototype(emotion)
    return frame


@pytest.mark.parametrize(
    ("emotion", "blendshapes"),
    [
        ("happiness", ["mouthSmile_L", "mouthSmile_R", "cheekSquint_L"]),
        ("sadness", ["browInnerUp_L", "mouthFrown_R"]),
        ("surprise", ["browOuterUp_L", "eyeWide_R"]),
        ("disgust", ["noseSneer_L", "mouthUpperUp_R"]),
        ("anger", ["browDown_L", "mouthPress_R"]),
        ("concern", ["browInnerUp_R", "browDown_L", "mouthFrown_L"]),
        ("interest", ["browOuterUp_R"]),
    ],
)
def test_prototypes_drive_the_named_blendshapes(emotion: str, blendshapes: list[str]) -> None:
    weights = prototype(emotion)
    assert weights.shape == (50,)
    for name in blendshapes:
        assert weights[ict_index(name)] >= 0.2, name
    assert weights.min() >= 0.0 and weights.max() <= 1.0


def test_only_happiness_and_interest_smile() -> None:
    smile = ict_index("mouthSmile_L")
    smiling = {e for e, row in zip(DISPLAY_EMOTIONS, PROTOTYPES) if row[smile] > 0}
    assert smiling == {"happiness", "interest"}


def test_read_emotions_recovers_intensities_of_mixtures() -> None:
    frames = np.stack([_face(sadness=0.6), _face(disgust=0.4, concern=0.3), _face(), _face(happiness=1.0)])
    read = read_emotions(frames)
    expected = np.zeros((4, len(DISPLAY_EMOTIONS)))
    expected[0, DISPLAY_EMOTIONS.index("sadness")] = 0.6
    expected[1, DISPLAY_EMOTIONS.index("disgust")] = 0.4
    expected[1, DISPLAY_EMOTIONS.index("concern")] = 0.3
    expected[3, DISPLAY_EMOTIONS.index("happiness")] = 1.0
    np.testing.assert_allclose(read, expected, atol=0.02)


def test_talking_and_blinking_do_not_read_as_emotion() -> None:
    frame = np.zeros(56)
    for name in ("eyeBlink_L", "eyeBlink_R", "mouthFunnel", "mouthLowerDown_L", "mouthPucker"):
        frame[ict_index(name)] = 1.0
    frame[53] = 0.2  # jaw open
    assert read_emotions(frame[None]).max() < 1e-6


def test_estimate_affect_signs_and_shape() -> None:
    frames = np.stack([_face(happiness=0.9), _face(sadness=0.9), _face(anger=0.9), _face()])
    affect = estimate_affect(frames)
    assert affect.shape == (4, 2) and affect.dtype == np.float32
    assert affect[0, 0] > 0.5 and affect[1, 0] < -0.4 and affect[2, 0] < -0.4
    assert affect[2, 1] > affect[1, 1]  # anger is more aroused than sadness
    np.testing.assert_allclose(affect[3], 0.0, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected motion of shape \(T, 56\)"):
        estimate_affect(np.zeros((4, 12)))


def test_response_fit_penalises_smiles_at_negative_emotions() -> None:
    happy = LISTENER_EMOTIONS.index("happiness")
    for emotion in ("sadness", "disgust", "anger"):
        row = RESPONSE_FIT[SPEAKER_EMOTIONS.index(emotion)]
        assert row[happy] < 0
        assert row.argmax() != happy
    assert RESPONSE_FIT[SPEAKER_EMOTIONS.index("sadness")].argmax() == LISTENER_EMOTIONS.index("concern")
    assert RESPONSE_FIT[SPEAKER_EMOTIONS.index("disgust")].argmax() == LISTENER_EMOTIONS.index("disgust")
    assert RESPONSE_FIT[SPEAKER_EMOTIONS.index("happiness")].argmax() == happy


def test_lexicons_are_disjoint_and_cover_every_speaker_emotion() -> None:
    assert set(LEXICONS) == set(SPEAKER_EMOTIONS) - {"neutral"}
    seen: set[str] = set(FILLERS)
    for words in LEXICONS.values():
        assert len(words) >= 20
        assert not seen & set(words)
        seen |= set(words)
    assert all(word_emotion(w) is None for w in FILLERS)


def test_word_emotion_normalises_case_and_punctuation() -> None:
    assert word_emotion("Gross!") == "disgust"
    assert word_emotion("  funeral, ") == "sadness"
    assert word_emotion("wonderful") == "happiness"
    assert word_emotion("table") is None
