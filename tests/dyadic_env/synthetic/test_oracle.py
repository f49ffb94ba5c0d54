"""The hidden oracle ranks appropriate listeners above poor ones and is not fooled by trivial policies."""

from __future__ import annotations

import numpy as np
import pytest

from dyadic_env.data import Word
from dyadic_env.synthetic import CRITERIA, Oracle, synthesize_listener
from dyadic_env.synthetic.emotions import prototype
from dyadic_env.synthetic.evaluation import GROUND_TRUTH_KINDS, TRIVIAL_POLICIES, trivial_listeners

MARGIN = 0.7  # on the weighted 1-5 score, averaged over the small preset's test split
POOR = ("generic_positive", "inattentive_frozen", "inattentive_drifting")


def test_table_covers_every_listener_and_scores_lie_in_range(small) -> None:
    assert set(GROUND_TRUTH_KINDS) | set(TRIVIAL_POLICIES) <= set(small.table)
    for name, row in small.table.items():
        assert row["clips"] >= 1, name
        for key in (*CRITERIA, "weighted"):
            assert 1.0 <= row[key] <= 5.0, (name, key)


@pytest.mark.parametrize("poor", POOR)
def test_appropriate_ground_truth_beats_poor_listeners_by_a_margin(small, poor: str) -> None:
    assert small.table["appropriate"]["weighted"] >= small.table[poor]["weighted"] + MARGIN


@pytest.mark.parametrize("policy", TRIVIAL_POLICIES)
def test_trivial_policies_score_clearly_below_appropriate_ground_truth(small, policy: str) -> None:
    assert small.table["appropriate"]["weighted"] >= small.table[policy]["weighted"] + 1.0
    assert small.table[policy]["weighted"] <= 3.0


def test_dataset_ground_truth_keeps_the_ranking(small) -> None:
    assert small.table["dataset_appropriate"]["weighted"] >= 4.0
    assert (
        small.table["dataset_appropriate"]["weighted"]
        >= small.table["dataset_inattentive"]["weighted"] + MARGIN
    )


def test_each_criterion_sees_its_own_failure(small) -> None:
    t = small.table
    assert t["appropriate"]["appropriateness"] >= t["generic_positive"]["appropriateness"] + 1.5
    assert t["appropriate"]["empathy"] >= t["generic_positive"]["empathy"] + 1.5
    assert t["appropriate"]["engagement"] >= t["inattentive_frozen"]["engagement"] + 2.0
    assert t["appropriate"]["engagement"] >= t["copy_speaker"]["engagement"] + 1.5
    for policy in ("copy_speaker", "shifted_copy", "random_tokens", "frozen_neutral", "mean_listener"):
        assert t[policy]["naturalness"] <= 1.5, policy
    assert t["appropriate"]["naturalness"] >= 4.5


def test_weighted_is_paper_eq_10(small) -> None:
    clip = small.test[0]
    weights = {"empathy": 0.4, "appropriateness": 0.3, "engagement": 0.2, "naturalness": 0.1}
    scores = Oracle(weights=weights).score(clip.speaker_motion, clip.listener_motion, clip.speaker_words)
    assert scores["weighted"] == pytest.approx(sum(weights[k] * scores[k] for k in CRITERIA))
    only_empathy = Oracle(
        weights={"empathy": 1.0, "appropriateness": 0.0, "engagement": 0.0, "naturalness": 0.0}
    )
    score = only_empathy.score(clip.speaker_motion, clip.listener_motion, clip.speaker_words)
    assert score["weighted"] == pytest.approx(score["empathy"])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"empathy": 0.5, "appropriateness": 0.5, "engagement": 0.5, "naturalness": 0.5}, "sum to 1"),
        ({"empathy": 1.0}, "exactly the keys"),
    ],
)
def test_bad_weights_are_rejected(weights, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Oracle(weights=weights)


def test_bad_shapes_are_rejected(small) -> None:
    clip = small.test[0]
    with pytest.raises(ValueError, match=r"listener_motion: expected shape \(\d+, 56\)"):
        Oracle().score(clip.speaker_motion, clip.listener_motion[:-3], clip.speaker_words)
    with pytest.raises(ValueError, match="NaN"):
        Oracle().score(clip.speaker_motion, np.full(clip.listener_motion.shape, np.nan), clip.speaker_words)


def _still_speaker(
    frames: int, words: list[str], face: np.ndarray | None = None
) -> tuple[np.ndarray, list[Word]]:
    """A speaker with a fixed face who says ``words`` in two phrases."""
    speaker = np.zeros((frames, 56), np.float32)
    if face is not None:
        speaker[:, :50] = face
    timed, t = [], 0.2
    for i, text in enumerate(words):
        timed.append(Word(t, t + 0.3, text))
        t += 0.35 + (0.8 if i == len(words) // 2 else 0.0)
    return speaker, timed


def _listener(frames: int, emotion: str, level: float, rng: np.random.Generator) -> np.ndarray:
    listener = np.zeros((frames, 56), np.float32)
    listener[:, :50] = level * prototype(emotion)
    listener[:, 50:52] = 0.02 * np.sin(np.arange(frames)[:, None] / 9.0 + np.array([0.0, 1.0]))
    return listener + rng.normal(0, 0.003, listener.shape).astype(np.float32)


def test_words_alone_change_what_is_appropriate() -> None:
    """A neutral-faced speaker saying sad words calls for concern; saying fillers it does not."""
    rng = np.random.default_rng(0)
    frames = 150
    sad, _ = _still_speaker(frames, [])
    _, sad_words = _still_speaker(
        frames, ["my", "dog", "died", "i", "cried", "funeral", "so", "lonely", "grief"]
    )
    _, filler_words = _still_speaker(frames, ["my", "dog", "went", "i", "said", "the", "so", "well", "okay"])
    concern = _listener(frames, "concern", 0.6, rng)
    oracle = Oracle()
    with_sad = oracle.score(sad, concern, sad_words)["appropriateness"]
    with_fillers = oracle.score(sad, concern, filler_words)["appropriateness"]
    assert with_sad >= with_fillers + 1.0


def test_a_smile_at_sadness_or_disgust_is_penalised() -> None:
    rng = np.random.default_rng(1)
    frames = 150
    oracle = Oracle()
    for emotion, fitting, words in [
        ("sadness", "concern", ["she", "passed", "away", "tears", "so", "sad", "i", "miss", "her"]),
        ("disgust", "disgust", ["the", "fridge", "was", "rotten", "mold", "and", "maggots", "so", "gross"]),
    ]:
        speaker, timed = _still_speaker(frames, words, face=0.8 * prototype(emotion))
        smile = oracle.score(speaker, _listener(frames, "happiness", 0.6, rng), timed)["appropriateness"]
        fit = oracle.score(speaker, _listener(frames, fitting, 0.6, rng), timed)["appropriateness"]
        assert fit >= 4.0 and smile <= 1.5, emotion


def test_oracle_reads_only_motion_and_words(small) -> None:
    """Stripping the generator truth (meta, ids, affect) changes nothing: the oracle gets arrays and words."""
    clip = small.test[1]
    words = [(w.start, w.end, w.text) for w in clip.speaker_words]
    direct = Oracle().score(np.array(clip.speaker_motion), np.array(clip.listener_motion), words)
    assert direct == Oracle().score(clip.speaker_motion, clip.listener_motion, clip.speaker_words)


def _rollout(stepper, listener: np.ndarray) -> np.ndarray:
    return np.array([stepper.step(frame) for frame in listener])


def test_stepper_rewards_better_trajectories_more(small) -> None:
    oracle = Oracle()
    rng = np.random.default_rng(0)
    totals: dict[str, list[float]] = {}
    for clip in small.test[:4]:
        candidates = {"appropriate": synthesize_listener(clip, "appropriate")}
        candidates["generic_positive"] = synthesize_listener(clip, "generic_positive")
        candidates["inattentive"] = synthesize_listener(clip, "inattentive", mode="drifting")
        candidates.update(trivial_listeners(clip, small.tokenizer, small.mean_frame, rng))
        for name, listener in candidates.items():
            stepper = oracle.stepper(clip.speaker_motion, clip.speaker_words)
            totals.setdefault(name, []).append(_rollout(stepper, listener).sum())
    best = np.mean(totals.pop("appropriate"))
    for name, values in totals.items():
        assert best > np.mean(values) + 10.0, name


def test_stepper_is_causal_and_ends_with_the_episode_score(small) -> None:
    clip = small.test[2]
    oracle = Oracle()
    listener = synthesize_listener(clip, "appropriate")
    full = oracle.stepper(clip.speaker_motion, clip.speaker_words)
    rewards = _rollout(full, listener)
    assert np.isfinite(rewards).all() and np.abs(rewards).max() < 10
    assert full.episode_scores() == oracle.score(clip.speaker_motion, listener, clip.speaker_words)
    # Changing the speaker's future (motion and words after frame k) leaves the first k rewards unchanged.
    k = clip.num_frames // 2
    future = np.array(clip.speaker_motion)
    future[k:] = np.random.default_rng(0).uniform(0, 0.5, future[k:].shape)
    words = [w for w in clip.speaker_words if w.start < k / clip.fps] + [
        Word(k / clip.fps + 0.1, k / clip.fps + 0.4, "gross")
    ]
    changed = _rollout(oracle.stepper(future, words), listener)
    np.testing.assert_allclose(changed[:k], rewards[:k])
    with pytest.raises(IndexError, match="no step left"):
        full.step(listener[0])
    early = oracle.stepper(clip.speaker_motion, clip.speaker_words)
    early.step(listener[0])
    assert early.episode_scores() == {**dict.fromkeys(CRITERIA, 1.0), "weighted": 1.0}


def test_without_words_pauses_are_found_from_the_speakers_jaw(small) -> None:
    from dyadic_env.synthetic.oracle import speaker_context

    hits = found = true_count = 0
    for clip in small.train[:40]:
        context = speaker_context(np.asarray(clip.speaker_motion, np.float64), [], clip.fps)
        true = [round(b * clip.fps) for _, b in clip.meta["phrases"] if b < clip.duration - 0.25]
        hits += sum(np.abs(context.phrase_ends - t).min(initial=99) <= 5 for t in true)
        found, true_count = found + len(context.phrase_ends), true_count + len(true)
    assert hits >= 0.7 * true_count and hits >= 0.7 * found


def test_split_modules_keep_the_old_import_paths():
    from dyadic_env.synthetic import generator, motion, oracle, oracle_stepper, perception, plans

    assert oracle.OracleStepper is oracle_stepper.OracleStepper
    assert oracle.speaker_context is perception.speaker_context
    assert oracle.read_listener is perception.read_listener
    assert generator.SpeakerPlan is plans.SpeakerPlan
    assert generator.listener_motion is motion.listener_motion
    assert generator.listener_style is plans.listener_style
