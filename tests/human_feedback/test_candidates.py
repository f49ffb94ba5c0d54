"""Candidate groups: rollouts per policy, the quantized ground truth, broken attention checks, videos."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from dyadic_env.data import load_dataset
from dyadic_env.envs.testing import write_random_walk_dataset
from human_feedback.candidates import (
    CollectConfig,
    PolicySpec,
    broken_tokens,
    captions_for,
    choose_clips,
    collect,
    load_policy,
)
from human_feedback.media import resolve_media
from human_feedback.store import Campaign, Candidate, CandidateGroup

TINY_VLA = {
    "backbone": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "num_key_value_heads": 2},
    "head_hidden": 32, "projector_hidden": 32, "context_frames": 8,
}  # fmt: skip


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    return str(
        write_random_walk_dataset(
            tmp_path_factory.mktemp("walk"),
            splits={"train": 4, "test": 3},
            frames=(20, 30),
            expression_basis="ict-arkit",
        )
    )


def _groups(store, name):
    with store.read() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.name == name))
        groups = session.scalars(
            select(CandidateGroup).where(CandidateGroup.campaign_id == campaign.id)
        ).all()
        return campaign, [(g.clip.clip_id, [c for c in g.candidates]) for g in groups]


def test_collect_builds_groups_of_rollouts_plus_ground_truth(store, walk, tmp_path):
    config = CollectConfig(
        policies=[PolicySpec.parse("rand=random"), PolicySpec.parse("neutral")],
        dataset=walk,
        clips=2,
        samples=3,
        render=False,
        broken_fraction=0.5,
        seed=5,
    )
    report = collect(store, "round1", config, ratings_per_group=2, media_dir=tmp_path / "m")
    assert (report.groups, report.broken, report.videos) == (2, 1, 0)
    campaign, groups = _groups(store, "round1")
    assert campaign.tokenizer["format"] == "dyadic-action-tokenizer" and campaign.ratings_per_group == 2
    dataset = load_dataset(walk)
    tokenizer = dataset.tokenizer()
    for clip_id, candidates in groups:
        sources = sorted((c.source, c.policy_name) for c in candidates)
        policies = [s for s in sources if s[0] == "policy"]
        assert policies == [("policy", "neutral")] * 3 + [("policy", "rand")] * 3
        truth = next(c for c in candidates if c.source == "ground_truth")
        np.testing.assert_array_equal(
            truth.token_array(), tokenizer.encode(dataset.clip(clip_id).listener_motion)
        )
        random_samples = [c.token_array() for c in candidates if c.policy_name == "rand"]
        assert not np.array_equal(random_samples[0], random_samples[1])  # different seeds, different samples
        assert len({c.seed for c in candidates if c.source == "policy"}) == 6
        assert all(c.num_frames == dataset.clip(clip_id).num_frames for c in candidates)
    assert sum(c.source == "broken" for _, cs in groups for c in cs) == 1


def test_collect_is_reproducible_under_a_seed(store, walk, tmp_path):
    config = CollectConfig(
        policies=[PolicySpec.parse("random")], dataset=walk, clips=2, samples=2, render=False, seed=3
    )
    collect(store, "a", config, media_dir=tmp_path / "a")
    collect(store, "b", config, media_dir=tmp_path / "b")
    (_, first), (_, second) = _groups(store, "a"), _groups(store, "b")
    assert [c for c, _ in first] == [c for c, _ in second]
    for (_, xs), (_, ys) in zip(first, second):
        for x, y in zip(xs, ys):
            np.testing.assert_array_equal(x.token_array(), y.token_array())


def test_bad_configs_say_what_to_fix(walk):
    with pytest.raises(ValueError, match="at least one policy"):
        CollectConfig(policies=[], dataset=walk)
    with pytest.raises(ValueError, match="distinct"):
        CollectConfig(policies=[PolicySpec.parse("random"), PolicySpec.parse("random")], dataset=walk)
    with pytest.raises(ValueError, match="broken_fraction"):
        CollectConfig(policies=[PolicySpec.parse("random")], dataset=walk, broken_fraction=2)


def test_unknown_policy_and_split_are_reported(store, walk, tmp_path):
    with pytest.raises(ValueError, match="neither a checkpoint directory nor an agent"):
        collect(
            store,
            "x",
            CollectConfig(policies=[PolicySpec.parse("gpt5")], dataset=walk, render=False),
            media_dir=tmp_path,
        )
    with pytest.raises(ValueError, match="no split 'dev'"):
        collect(
            store,
            "y",
            CollectConfig(policies=[PolicySpec.parse("random")], dataset=walk, split="dev"),
            media_dir=tmp_path,
        )


def test_broken_candidates_are_broken():
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.arange(20)[:, None] + 100, 56, axis=1)
    jitter = broken_tokens(smooth, "jitter", 256, rng)
    assert np.abs(np.diff(jitter, axis=0)).mean() > 20 * np.abs(np.diff(smooth, axis=0)).mean()
    assert jitter.min() >= 0 and jitter.max() <= 255
    frozen = broken_tokens(smooth, "frozen", 256, rng)
    assert (frozen == frozen[0]).all() and frozen.shape == smooth.shape


def test_clip_choice_and_captions():
    assert choose_clips(["a", "b", "c"], 5, 0) == ["a", "b", "c"]
    picked = choose_clips([str(i) for i in range(50)], 5, 0)
    assert len(set(picked)) == 5 and picked == choose_clips([str(i) for i in range(50)], 5, 0)

    class FakeClip:
        num_frames, fps = 50, 25.0
        speaker_words = ((0.1, 0.3, "we"), (0.5, 0.7, "went"), (1.5, 1.8, "home"))

    captions = captions_for(FakeClip(), window_s=1.0)
    assert (
        captions[0] == ""
        and captions[20] == "we went"
        and captions[30] == "we went"
        and captions[49] == "home"
    )


@pytest.mark.render
@pytest.mark.slow
def test_collect_renders_one_video_per_candidate_inside_the_campaign(sqlite_store, walk, tmp_path):
    store = sqlite_store
    from dyadic_env.render import read_video

    config = CollectConfig(
        policies=[PolicySpec.parse("random")],
        dataset=walk,
        clips=1,
        samples=1,
        video_size=32,
        broken_fraction=0.0,
    )
    report = collect(store, "video", config, media_dir=tmp_path / "media")
    assert report.videos == 2
    campaign, groups = _groups(store, "video")
    for _, candidates in groups:
        for c in candidates:
            path = resolve_media(store.media_root(campaign.media_dir), c.video_path)
            assert path.name.startswith("v_") and c.public_id not in path.name  # a random name, nothing else
            frames, fps = read_video(path)
            assert frames.shape[1:] == (32, 64, 3) and len(frames) == c.num_frames and fps == 25.0
    with store.read() as session:
        assert all(c.video_path.startswith("videos/") for c in session.scalars(select(Candidate)))


@pytest.mark.slow
def test_a_vla_checkpoint_is_sampled_with_temperature(sqlite_store, walk, tmp_path):
    store = sqlite_store
    torch = pytest.importorskip("torch")
    from agents.vla.factory import model_for_dataset

    torch.manual_seed(0)
    model = model_for_dataset(load_dataset(walk), seed=0, **TINY_VLA)
    model.config.decode_mode = "greedy"  # how it deploys; candidates are samples all the same
    model.save_pretrained(tmp_path / "vla")
    config = CollectConfig(
        policies=[PolicySpec.parse(f"sft={tmp_path / 'vla'}")],
        dataset=walk,
        clips=1,
        samples=2,
        render=False,
        temperature=1.5,
        broken_fraction=0.0,
    )
    collect(store, "vla", config, media_dir=tmp_path / "m")
    _, [(clip_id, candidates)] = _groups(store, "vla")
    samples = [c for c in candidates if c.policy_name == "sft"]
    assert len(samples) == 2 and all(c.source == "policy" for c in samples)
    assert not np.array_equal(samples[0].token_array(), samples[1].token_array())
    assert samples[0].num_frames == load_dataset(walk).clip(clip_id).num_frames


@pytest.mark.slow
def test_a_study_samples_each_checkpoint_at_its_deployed_temperature(walk, tmp_path):
    """`dyadic feedback study` rates policies as `dyadic eval` samples them; collect keeps its 1.0."""
    import argparse

    pytest.importorskip("torch")
    from agents.vla.factory import model_for_dataset
    from experiments.commands.feedback import _candidate_args, _collect_config

    model = model_for_dataset(load_dataset(walk), seed=0, **TINY_VLA)
    model.config.decode_temperature = 0.7
    model.save_pretrained(tmp_path / "vla")
    for study, given, expected in [(True, [], 0.7), (True, ["--temperature", "1.3"], 1.3), (False, [], 1.0)]:
        parser = argparse.ArgumentParser()
        _candidate_args(parser, study=study)
        args = parser.parse_args(["--campaign", "c", "--dataset", str(walk), *given])
        config = _collect_config(args, [f"sft={tmp_path / 'vla'}"], study=study)
        agent = load_policy(config.policies[0], load_dataset(walk), seed=0, temperature=config.temperature)
        assert agent.sampler.temperature == pytest.approx(expected), (study, given)
