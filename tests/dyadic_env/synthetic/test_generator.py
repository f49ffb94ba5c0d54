"""The generator: shapes, splits, timed words, listener behaviour, determinism, calibration."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from dyadic_env.data import Clip, validate_clip
from dyadic_env.expression_basis import ict_index
from dyadic_env.synthetic import PRESETS, SyntheticConfig, calibration, generate_clips, synthesize_listener
from dyadic_env.synthetic.generator import SpeakerPlan
from dyadic_env.synthetic.lexicon import word_emotion

SMILE = [ict_index("mouthSmile_L"), ict_index("mouthSmile_R")]


def _segments(clip: Clip, emotion: str) -> list[tuple[int, int]]:
    return [
        (round(a * clip.fps), round(b * clip.fps))
        for a, b, e, *_ in clip.meta["speaker_emotions"]
        if e == emotion
    ]


def test_tiny_preset_shapes_splits_and_validity(tiny_pairs: list[tuple[str, Clip]]) -> None:
    assert len(tiny_pairs) == 24
    assert Counter(split for split, _ in tiny_pairs) == {"train": 12, "val": 6, "test": 6}
    speakers = {
        split: {clip.speaker_id for s, clip in tiny_pairs if s == split} for split in ("train", "val", "test")
    }
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["val"]
    for _, clip in tiny_pairs:
        validate_clip(clip)
        assert clip.num_frames == 100 and clip.fps == 25.0
        assert clip.speaker_affect.shape == clip.listener_affect.shape == (100, 2)
        assert clip.source == "synthetic"
        json.dumps(clip.meta)  # meta goes into the clip index as JSON
    kinds = Counter(clip.meta["listener_kind"] for _, clip in tiny_pairs)
    assert set(kinds) == {"appropriate", "generic_positive", "inattentive"}


def test_words_only_while_talking_at_a_realistic_rate(small) -> None:
    talking, count = 0.0, 0
    for clip in small.train[:80]:
        phrases = clip.meta["phrases"]
        for word in clip.speaker_words:
            assert any(a - 1e-6 <= word.start and word.end <= b + 1e-6 for a, b in phrases), word
            assert 0 <= word.start < word.end <= clip.duration
        talking += sum(b - a for a, b in phrases)
        count += len(clip.speaker_words)
    assert 2.3 <= count / talking <= 3.4  # words per second of speech: 140-200 wpm


def test_words_carry_the_segment_emotion(small) -> None:
    per_emotion: Counter = Counter()
    wrong = 0
    for clip in small.train:
        for word in clip.speaker_words:
            emotion = word_emotion(word.text)
            if emotion is None:
                continue
            segment = next(s for s in SpeakerPlan.from_clip(clip).segments if s.start <= word.start < s.end)
            wrong += emotion != segment.emotion
            per_emotion[emotion] += 1
    assert wrong == 0
    assert min(per_emotion.values()) >= 50


def test_text_only_segments_have_mild_faces_and_strong_words(small) -> None:
    text_only = [s for c in small.train for s in SpeakerPlan.from_clip(c).segments if s.text_only]
    assert len(text_only) >= 20
    assert all(s.face < 0.25 and s.word_rate >= 0.5 for s in text_only)


def test_speaker_jaw_moves_only_while_talking(tiny_pairs) -> None:
    for _, clip in tiny_pairs:
        jaw = np.asarray(clip.speaker_motion[:, 53])
        mask = np.zeros(clip.num_frames, bool)
        for a, b in clip.meta["phrases"]:
            mask[round(a * clip.fps) : round(b * clip.fps)] = True
        quiet = ~mask
        quiet[1:] &= ~mask[:-1]  # skip the frame right after speech
        if mask.sum() > 10 and quiet.sum() > 10:
            assert np.diff(jaw)[mask[1:]].std() > 2 * np.diff(jaw)[quiet[1:]].std()


def test_generic_positive_listeners_smile_at_sadness_and_appropriate_ones_do_not(small) -> None:
    appropriate, generic = [], []
    for clip in small.test + small.train[:60]:
        for a, b in _segments(clip, "sadness") + _segments(clip, "disgust"):
            start = a + 20  # after the listener's lag
            if b - start < 10:
                continue
            appropriate.append(synthesize_listener(clip, "appropriate")[start:b, SMILE].mean())
            generic.append(synthesize_listener(clip, "generic_positive")[start:b, SMILE].mean())
    assert len(appropriate) >= 10
    assert np.mean(generic) > 0.3 and np.mean(appropriate) < 0.05


def test_appropriate_listeners_react_with_a_positive_lag(small) -> None:
    from dyadic_env.synthetic.oracle import read_listener, speaker_context

    lags = []
    for clip in small.train[:60]:
        if clip.meta["listener_kind"] != "appropriate":
            continue
        speaker = speaker_context(np.asarray(clip.speaker_motion, np.float64), clip.speaker_words, clip.fps)
        listener = read_listener(np.asarray(clip.listener_motion, np.float64))
        # Valence follows the speaker's; the best alignment is a fraction of a second late.
        scores = [
            np.corrcoef(listener.valence[k:], speaker.valence[: clip.num_frames - k])[0, 1] for k in range(30)
        ]
        if np.isfinite(scores).all():
            lags.append(int(np.argmax(scores)))
    assert len(lags) >= 20
    assert 3 <= np.median(lags) <= 25  # 0.12-1.0 s at 25 fps


def test_appropriate_listeners_nod_after_phrase_ends(small) -> None:
    after, elsewhere = [], []
    for clip in small.train[:60]:
        if clip.meta["listener_kind"] != "appropriate":
            continue
        pitch = np.asarray(clip.listener_motion[:, 50], np.float64)
        velocity = np.abs(np.diff(pitch))
        near = np.zeros(clip.num_frames - 1, bool)
        for _, b in clip.meta["phrases"]:
            near[round(b * clip.fps) : round((b + 1.2) * clip.fps)] = True
        after.append(velocity[near].mean())
        elsewhere.append(velocity[~near].mean())
    assert np.mean(after) > 1.5 * np.mean(elsewhere)


def test_same_seed_same_arrays_and_different_seed_different_arrays() -> None:
    config = PRESETS["tiny"]
    first, second, other = generate_clips(config), generate_clips(config), generate_clips(config, seed=1)
    for (split_a, a), (split_b, b) in zip(first, second):
        assert split_a == split_b and a.clip_id == b.clip_id and a.speaker_words == b.speaker_words
        np.testing.assert_array_equal(a.speaker_motion, b.speaker_motion)
        np.testing.assert_array_equal(a.listener_motion, b.listener_motion)
        np.testing.assert_array_equal(a.listener_affect, b.listener_affect)
    assert not np.array_equal(first[0][1].speaker_motion, other[0][1].speaker_motion)
    clip = first[0][1]
    np.testing.assert_array_equal(
        synthesize_listener(clip, "appropriate"), synthesize_listener(clip, "appropriate")
    )


def test_poor_listener_fraction_is_configurable() -> None:
    none = generate_clips(
        SyntheticConfig(num_clips=20, num_speakers=5, num_listeners=10, poor_listener_fraction=0.0)
    )
    assert {c.meta["listener_kind"] for _, c in none} == {"appropriate"}
    config = SyntheticConfig(
        num_clips=40, num_speakers=5, num_listeners=10, poor_listener_fraction=1.0,
        poor_kind_weights={"generic_positive": 1.0},
    )  # fmt: skip
    assert {c.meta["listener_kind"] for _, c in generate_clips(config)} == {"generic_positive"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("poor_listener_fraction", 1.5, r"poor_listener_fraction: expected a value in \[0, 1\], found 1.5"),
        ("clip_seconds", (5.0, 2.0), r"clip_seconds: expected \(min, max\)"),
        ("num_clips", 0, "num_clips: expected a positive integer"),
        (
            "split_fractions",
            {"train": 0.5, "test": 0.2},
            "split_fractions: expected non-negative shares summing to 1",
        ),
        ("poor_kind_weights", {"grumpy": 1.0}, "poor_kind_weights: expected non-negative weights"),
    ],
)
def test_config_rejects_bad_values_with_the_field_name(field: str, value, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**{field: value})


def test_synthesize_listener_rejects_unknown_kinds(tiny_pairs) -> None:
    clip = tiny_pairs[0][1]
    with pytest.raises(ValueError, match="kind: expected one of appropriate"):
        synthesize_listener(clip, "grumpy")
    with pytest.raises(ValueError, match="only inattentive listeners"):
        synthesize_listener(clip, "appropriate", mode="frozen")


def test_calibration_against_real_ranges(small) -> None:
    rows = {row["figure"]: row for row in calibration(small.train[:100])}
    speaker_neck = rows["neck rotation std (rad)"]["speaker"]
    assert speaker_neck[0] >= 0.01 and speaker_neck[1] <= 0.12
    speaker_jaw = rows["jaw rotation std (rad)"]["speaker"]
    assert 0.03 <= speaker_jaw[1] <= 0.06
    active = rows["expression per-dim std (active dims)"]
    assert active["speaker"][1] <= 0.4 and active["listener"][1] <= 0.4 and active["speaker"][1] >= 0.15
    assert rows["expression max abs"]["speaker"][1] <= 1.0
    low, high = rows["speech rate while talking (words/s)"]["speaker"]
    assert 2.0 <= low <= high <= 3.6
