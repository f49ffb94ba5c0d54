"""Emotion prototypes in the ``ict-arkit`` expression basis, and reading emotions back from a face.

A prototype is the 50-d blendshape weight vector of a full-intensity expression (weights in [0, 1]); a
face at intensity ``k`` of emotion ``e`` shows ``k * PROTOTYPES[e]``. Prototypes use only the
*emotion blendshapes* (brows, eyes, cheeks, mouth corners, nose): the talking blendshapes (funnel,
pucker, lower lip), the blinks and the gaze are left out, so speech and blinking do not read as emotion.

Speaker emotions are :data:`SPEAKER_EMOTIONS`; listeners may also show ``concern`` (sympathetic: inner
brows up and knitted, slight frown, pressed lips) and ``interest`` (outer brows up, slight smile).
"""

from __future__ import annotations

import functools

import numpy as np

from dyadic_env.expression_basis import EXPRESSION, ICT_ARKIT_EXPRESSIONS, JAW_POSE, NECK_POSE, ict_index

NEUTRAL = "neutral"
SPEAKER_EMOTIONS: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "disgust", "anger")
LISTENER_EMOTIONS: tuple[str, ...] = (*SPEAKER_EMOTIONS, "concern", "interest")
# Non-neutral emotions in the order of the columns of ``PROTOTYPES`` and of :func:`read_emotions`.
DISPLAY_EMOTIONS: tuple[str, ...] = LISTENER_EMOTIONS[1:]

_SHAPES: dict[str, dict[str, float]] = {
    "happiness": {
        "mouthSmile": 0.75, "cheekSquint": 0.45, "eyeSquint": 0.3, "mouthDimple": 0.25,
    },
    "sadness": {
        "browInnerUp": 0.7, "mouthFrown": 0.6, "mouthShrugLower": 0.35, "mouthPress": 0.15,
    },
    "surprise": {
        "browInnerUp": 0.65, "browOuterUp": 0.75, "eyeWide": 0.8,
    },
    "disgust": {
        "noseSneer": 0.75, "mouthUpperUp": 0.6, "browDown": 0.45, "eyeSquint": 0.35, "cheekSquint": 0.35,
        "mouthFrown": 0.25, "mouthShrugUpper": 0.3,
    },
    "anger": {
        "browDown": 0.85, "eyeWide": 0.3, "mouthPress": 0.55, "eyeSquint": 0.25, "noseSneer": 0.2,
        "mouthFrown": 0.15,
    },
    "concern": {
        "browInnerUp": 0.5, "browDown": 0.3, "mouthFrown": 0.2, "mouthPress": 0.25, "eyeSquint": 0.1,
    },
    "interest": {
        "browOuterUp": 0.35, "browInnerUp": 0.15, "mouthSmile": 0.15, "eyeSquint": 0.15, "mouthDimple": 0.1,
    },
}  # fmt: skip

# Russell's circumplex, roughly: (valence, arousal) in [-1, 1] at full intensity.
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0), "happiness": (0.8, 0.5), "sadness": (-0.7, -0.4), "surprise": (0.3, 0.8),
    "disgust": (-0.6, 0.35), "anger": (-0.7, 0.75), "concern": (-0.3, 0.2), "interest": (0.4, 0.3),
}  # fmt: skip

# Pose tendencies at full intensity, radians: neck (pitch, yaw, roll) with positive pitch = head down,
# and jaw opening (positive x = open).
NECK_TENDENCY: dict[str, tuple[float, float, float]] = {
    "neutral": (0.0, 0.0, 0.0), "happiness": (-0.03, 0.0, 0.02), "sadness": (0.09, 0.0, 0.0),
    "surprise": (-0.06, 0.0, 0.0), "disgust": (-0.04, 0.06, 0.0), "anger": (0.05, 0.0, 0.0),
    "concern": (0.03, 0.0, 0.06), "interest": (-0.01, 0.0, 0.04),
}  # fmt: skip
JAW_TENDENCY: dict[str, float] = {
    "neutral": 0.0, "happiness": 0.03, "sadness": 0.0, "surprise": 0.12, "disgust": 0.02, "anger": 0.0,
    "concern": 0.0, "interest": 0.01,
}  # fmt: skip

# How fitting a listener display (columns, LISTENER_EMOTIONS) is as a response to what the speaker shows
# and says (rows, SPEAKER_EMOTIONS): sadness is met by concern or sadness, disgust by disgust, joy by a
# smile, anger by concern or a serious face. Negative entries are penalties: a smile at sadness, disgust
# or anger is the "generic positivity" the paper's Figure 1 calls out.
RESPONSE_FIT = np.array(
    [   # neutral happy  sad  surpr disg  anger concern interest
        [1.0,  0.6, -0.1,  0.2, -0.4, -0.6,  0.3,  1.0],   # speaker neutral
        [0.3,  1.0, -0.6,  0.6, -0.6, -0.8, -0.2,  0.7],   # speaker happiness
        [0.3, -0.8,  0.9, -0.3, -0.1, -0.6,  1.0,  0.1],   # speaker sadness
        [0.3,  0.6, -0.3,  1.0, -0.2, -0.5,  0.2,  0.9],   # speaker surprise
        [0.3, -0.8,  0.2,  0.1,  1.0,  0.2,  0.8,  0.0],   # speaker disgust
        [0.4, -0.8,  0.2,  0.0,  0.3,  0.2,  1.0,  0.0],   # speaker anger
    ],
)  # fmt: skip

# The responses an appropriate listener picks from, with their probabilities.
APPROPRIATE_RESPONSES: dict[str, dict[str, float]] = {
    "neutral": {"neutral": 0.5, "interest": 0.5},
    "happiness": {"happiness": 1.0},
    "sadness": {"concern": 0.7, "sadness": 0.3},
    "surprise": {"surprise": 0.5, "interest": 0.5},
    "disgust": {"disgust": 0.8, "concern": 0.2},
    "anger": {"concern": 0.7, "neutral": 0.3},
}


def _sided(base: str) -> tuple[str, ...]:
    """``"mouthSmile"`` -> ``("mouthSmile_L", "mouthSmile_R")``; unsided names map to themselves."""
    if base in ICT_ARKIT_EXPRESSIONS:
        return (base,)
    return (f"{base}_L", f"{base}_R")


def _build_prototypes() -> np.ndarray:
    protos = np.zeros((len(DISPLAY_EMOTIONS), len(ICT_ARKIT_EXPRESSIONS)), dtype=np.float64)
    for row, emotion in enumerate(DISPLAY_EMOTIONS):
        for base, weight in _SHAPES[emotion].items():
            for name in _sided(base):
                protos[row, ict_index(name)] = weight
    return protos


PROTOTYPES: np.ndarray = _build_prototypes()
"""``(7, 50)``: full-intensity blendshape weights of each of :data:`DISPLAY_EMOTIONS`."""
# Blendshapes that carry emotion (read by the oracle); the rest move with speech, blinks and gaze.
EMOTION_DIMS: np.ndarray = np.flatnonzero(PROTOTYPES.any(axis=0))
SPEAKER_DISPLAY = np.array([DISPLAY_EMOTIONS.index(e) for e in SPEAKER_EMOTIONS[1:]])
NECK = np.array([NECK_TENDENCY[e] for e in LISTENER_EMOTIONS])
JAW = np.array([JAW_TENDENCY[e] for e in LISTENER_EMOTIONS])
VA = np.array([VALENCE_AROUSAL[e] for e in LISTENER_EMOTIONS])
_NNLS_ITERATIONS = 20


def prototype(emotion: str) -> np.ndarray:
    """The full-intensity ``(50,)`` blendshape weights of ``emotion`` (zeros for neutral)."""
    if emotion == NEUTRAL:
        return np.zeros(len(ICT_ARKIT_EXPRESSIONS))
    if emotion not in DISPLAY_EMOTIONS:
        raise KeyError(f"unknown emotion {emotion!r}; expected one of {', '.join(LISTENER_EMOTIONS)}")
    return PROTOTYPES[DISPLAY_EMOTIONS.index(emotion)].copy()


@functools.lru_cache(maxsize=8)
def _nnls_system(emotions: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    basis = PROTOTYPES[[DISPLAY_EMOTIONS.index(e) for e in emotions]][:, EMOTION_DIMS]
    gram = basis @ basis.T
    return basis.T.copy(), gram, np.linalg.pinv(gram), float(1.0 / np.linalg.eigvalsh(gram).max())


def read_emotions(motion: np.ndarray, emotions: tuple[str, ...] = DISPLAY_EMOTIONS) -> np.ndarray:
    """Non-negative intensities ``(T, len(emotions))`` that best explain each frame's emotion blendshapes.

    Non-negative least squares on the emotion blendshapes, solved for all frames at once by accelerated
    projected gradient from the clipped unconstrained solution (a fixed number of steps, so O(T)).
    """
    frames = np.asarray(motion, dtype=np.float64)
    expr = frames[..., EXPRESSION] if frames.shape[-1] != len(ICT_ARKIT_EXPRESSIONS) else frames
    basis_t, gram, gram_inv, step = _nnls_system(tuple(emotions))
    target = expr[..., EMOTION_DIMS].reshape(-1, len(EMOTION_DIMS)) @ basis_t
    coef = np.maximum(target @ gram_inv, 0.0)
    previous, momentum = coef, coef
    for k in range(_NNLS_ITERATIONS):
        coef = np.maximum(momentum - step * (momentum @ gram - target), 0.0)
        momentum = coef + (k / (k + 3.0)) * (coef - previous)
        previous = coef
    return coef.reshape(*expr.shape[:-1], len(emotions))


def display_distribution(intensities: np.ndarray, full: float = 1.0) -> np.ndarray:
    """``(T, 1 + E)`` shares of neutral and each emotion from read intensities ``(T, E)``.

    Total intensity at or above ``full`` is a complete display (normalised to shares summing to 1);
    below it, the remainder is neutral.
    """
    total = intensities.sum(axis=-1, keepdims=True)
    shares = intensities / np.maximum(total, full)
    return np.concatenate([1.0 - shares.sum(axis=-1, keepdims=True), shares], axis=-1)


def affect_of(distribution: np.ndarray) -> np.ndarray:
    """Valence and arousal ``(T, 2)`` of a neutral-plus-emotions distribution over LISTENER_EMOTIONS."""
    return distribution @ VA[: distribution.shape[-1]]


def estimate_affect(motion: np.ndarray) -> np.ndarray:
    """Per-frame (valence, arousal) ``(T, 2)`` in [-1, 1] read from an ``ict-arkit`` face ``(T, 56)``.

    The face's emotion blendshapes are read through the prototypes; each emotion contributes its
    circumplex position in proportion to its intensity.
    """
    motion = np.asarray(motion)
    if motion.ndim != 2 or motion.shape[1] not in (50, 56):
        raise ValueError(f"estimate_affect: expected motion of shape (T, 56), found {motion.shape}")
    return np.clip(affect_of(display_distribution(read_emotions(motion))), -1.0, 1.0).astype(np.float32)


def neck_and_jaw(distribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neck ``(T, 3)`` and jaw-opening ``(T,)`` tendencies of a distribution over LISTENER_EMOTIONS."""
    k = distribution.shape[-1]
    return distribution @ NECK[:k], distribution @ JAW[:k]


__all__ = [
    "APPROPRIATE_RESPONSES", "DISPLAY_EMOTIONS", "EMOTION_DIMS", "JAW_POSE", "LISTENER_EMOTIONS", "NECK_POSE",
    "PROTOTYPES", "RESPONSE_FIT", "SPEAKER_EMOTIONS", "VALENCE_AROUSAL", "affect_of", "display_distribution",
    "estimate_affect", "prototype", "read_emotions",
]  # fmt: skip
