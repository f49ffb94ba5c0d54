"""Bradley-Terry reward models: recovering a known preference, save/load, features, the wrapper's math."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reward_models import (
    EpisodeContext,
    PairData,
    RewardModelConfig,
    RewardTrainingConfig,
    StepFeatureConfig,
    TrajectoryRewardModel,
    episode_context,
    observation_features,
    pair_accuracy,
    train_reward_model,
    trajectory_features,
)

FEATS = StepFeatureConfig(
    speaker_frames=8, speaker_stride=4, listener_history=1, word_buckets=8, words_window_s=1.0
)
WORDS = ["yes", "sad", "great", "no", "well"]


def _episode(rng: np.random.Generator, t: int) -> tuple[EpisodeContext, np.ndarray, list[str]]:
    speaker = np.cumsum(rng.normal(0, 0.2, (t, 56)), axis=0).astype(np.float32)
    words = [" ".join(rng.choice(WORDS, rng.integers(0, 3))) for _ in range(t)]
    return episode_context(FEATS, speaker, words), speaker, words


def _known_preference_data(seed: int, episodes: int, candidates: int, t: int, w: np.ndarray) -> PairData:
    """Candidates with smooth random listener motion, every pair labelled by a known linear reward w . phi."""
    rng = np.random.default_rng(seed)
    contexts, frames, owner, pairs = [], [], [], []
    for e in range(episodes):
        ctx, _, _ = _episode(rng, t)
        contexts.append(ctx)
        first = len(frames)
        for _ in range(candidates):
            drift = rng.normal(0, 1.0, 56)
            frames.append((drift + np.cumsum(rng.normal(0, 0.1, (t, 56)), axis=0)).astype(np.float32))
            owner.append(e)
        data = PairData(FEATS, contexts, frames, owner, np.zeros((0, 2)))
        returns = [float((data.candidate_features(c) @ w).sum()) for c in range(first, len(frames))]
        for i in range(candidates):
            for j in range(i + 1, candidates):
                a, b = first + i, first + j
                pairs.append((a, b) if returns[i] > returns[j] else (b, a))
    return PairData(FEATS, contexts, frames, owner, np.array(pairs))


def test_reward_model_recovers_a_known_linear_preference() -> None:
    # The known reward: linear in 16 of the step features (speaker, words, the listener frame, its motion).
    rng = np.random.default_rng(123)
    w = np.zeros(FEATS.dim)
    w[rng.choice(FEATS.dim, 16, replace=False)] = rng.normal(0, 1, 16)
    train = _known_preference_data(seed=0, episodes=120, candidates=5, t=24, w=w)
    held_out = _known_preference_data(seed=1, episodes=10, candidates=5, t=24, w=w)
    model_cfg = RewardModelConfig(features=FEATS, hidden_sizes=(64,), ensemble_size=2, criteria_head=False)
    train_cfg = RewardTrainingConfig(epochs=15, batch_size=32, learning_rate=3e-3, val_fraction=0.0, seed=0)
    model, figures = train_reward_model(train, model_cfg, train_cfg)
    untrained = TrajectoryRewardModel(model_cfg)
    accuracy = pair_accuracy(model, held_out)
    assert figures["train_accuracy"] > 0.95
    assert accuracy > 0.9, f"held-out pair accuracy {accuracy:.3f}"
    # The untrained model is near chance, so the accuracy above is learned.
    assert 0.2 < pair_accuracy(untrained, held_out) < 0.8


def _lagged_preference_data(seed: int, episodes: int, candidates: int = 5, t: int = 24) -> PairData:
    """Listener frames whose first value is white noise (the rest and the speaker zero), each pair labelled by
    the sum over steps of that value times its value 3 steps before: a preference no single step shows."""
    rng = np.random.default_rng(seed)
    context = episode_context(FEATS, np.zeros((t, 56), np.float32), [""] * t)
    frames, owner, pairs = [], [], []
    for e in range(episodes):
        first = len(frames)
        for _ in range(candidates):
            f = np.zeros((t, 56), np.float32)
            f[:, 0] = rng.normal(0, 1, t)
            frames.append(f)
            owner.append(e)
        score = [float((f[3:, 0] * f[:-3, 0]).sum()) for f in frames[first:]]
        for i in range(candidates):
            for j in range(i + 1, candidates):
                pairs.append((first + i, first + j) if score[i] > score[j] else (first + j, first + i))
    return PairData(FEATS, [context] * episodes, frames, owner, np.array(pairs))


def test_a_temporal_reward_model_learns_what_unfolds_over_steps_and_a_per_step_one_cannot() -> None:
    train, held_out = _lagged_preference_data(0, 120), _lagged_preference_data(1, 40)
    train_cfg = RewardTrainingConfig(epochs=10, batch_size=32, learning_rate=3e-3, val_fraction=0.0, seed=0)
    accuracy = {}
    for dilations in [(), (1, 2)]:
        model_cfg = RewardModelConfig(
            features=FEATS,
            hidden_sizes=(64,),
            ensemble_size=1,
            criteria_head=False,
            temporal_dilations=dilations,
        )
        model, _ = train_reward_model(train, model_cfg, train_cfg)
        accuracy[dilations] = pair_accuracy(model, held_out)
    assert accuracy[(1, 2)] > 0.7, accuracy
    assert accuracy[()] < 0.6, accuracy


def test_episode_batches_keep_each_episodes_pairs_together_and_learn_as_well() -> None:
    from reward_models.training import _epoch_order, _pair_loss

    rng = np.random.default_rng(123)
    w = np.zeros(FEATS.dim)
    w[rng.choice(FEATS.dim, 16, replace=False)] = rng.normal(0, 1, 16)
    train = _known_preference_data(seed=0, episodes=120, candidates=5, t=24, w=w)
    order = _epoch_order(train, np.arange(train.num_pairs), True, np.random.default_rng(0))
    episodes = np.asarray(train.candidate_context)[train.pairs[order, 0]]
    assert sorted(order.tolist()) == list(range(train.num_pairs))
    assert (np.diff(episodes) != 0).sum() == 119  # each episode's 10 pairs form one run
    # A batch with repeated candidates gives the loss of scoring every pair's candidates separately.
    model_cfg = RewardModelConfig(features=FEATS, hidden_sizes=(16,), ensemble_size=1, criteria_head=False)
    cfg = RewardTrainingConfig(reward_l2=0.0)
    model = TrajectoryRewardModel(model_cfg)
    loss, margin = _pair_loss(model, 0, train, order[:30], cfg)
    x, mask = train.batch(train.pairs[order[:30]].T.reshape(-1).tolist())
    chosen, rejected = model.returns(x, mask)[0].chunk(2)
    torch.testing.assert_close(margin, (chosen - rejected).detach())
    torch.testing.assert_close(loss, -torch.nn.functional.logsigmoid(chosen - rejected).mean())
    held_out = _known_preference_data(seed=1, episodes=10, candidates=5, t=24, w=w)
    model_cfg = RewardModelConfig(features=FEATS, hidden_sizes=(64,), ensemble_size=2, criteria_head=False)
    train_cfg = RewardTrainingConfig(
        epochs=15, batch_size=32, learning_rate=3e-3, val_fraction=0.0, batch_by_episode=True, seed=0
    )
    model, _ = train_reward_model(train, model_cfg, train_cfg)
    assert pair_accuracy(model, held_out) > 0.9


@pytest.mark.parametrize("dilations", [(), (1, 2)])
def test_save_then_load_gives_identical_rewards(tmp_path, dilations) -> None:
    cfg = RewardModelConfig(
        features=FEATS,
        hidden_sizes=(16, 8),
        ensemble_size=3,
        criteria_head=True,
        temporal_dilations=dilations,
    )
    torch.manual_seed(0)
    model = TrajectoryRewardModel(cfg)
    model.fit_normalizer(np.random.default_rng(0).normal(size=(50, FEATS.dim)))
    x = torch.randn(2, 7, FEATS.dim)
    model.save_pretrained(tmp_path / "rm")
    loaded = TrajectoryRewardModel.from_pretrained(tmp_path / "rm")
    assert loaded.config == cfg
    torch.testing.assert_close(loaded.step_rewards(x), model.step_rewards(x))
    torch.testing.assert_close(loaded.criteria(x), model.criteria(x))
    assert loaded.step_rewards(x).shape == (3, 2, 7)
    assert loaded.criteria(x).shape == (3, 2, 4)


def test_from_pretrained_names_the_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"reward_model\.json"):
        TrajectoryRewardModel.from_pretrained(tmp_path)


def test_ensemble_disagreement_is_member_std() -> None:
    cfg = RewardModelConfig(features=FEATS, hidden_sizes=(8,), ensemble_size=4, criteria_head=False)
    torch.manual_seed(1)
    model = TrajectoryRewardModel(cfg)
    for member in model.members:  # make the members differ visibly
        torch.nn.init.normal_(member.reward.weight, std=0.5)
    x = np.random.default_rng(0).normal(size=(5, FEATS.dim)).astype(np.float32)
    mean, std = model.predict(x)
    per_member = model.step_rewards(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(mean, per_member.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, per_member.std(0), rtol=1e-5, atol=1e-6)
    assert (std > 0).all()


def test_offline_features_match_env_observation_windows() -> None:
    """Features from a clip equal those read from observation dicts built the env's way (zeros before t=0)."""
    rng = np.random.default_rng(3)
    t, k = 12, 10
    speaker = rng.normal(size=(t, 56)).astype(np.float32)
    listener = rng.normal(size=(t, 56)).astype(np.float32)
    words = [f"w{i % 3}" for i in range(t)]
    offline = trajectory_features(FEATS, speaker, listener, words)
    observations = []
    for step in range(t):
        s_win = np.zeros((k, 56), np.float32)
        l_win = np.zeros((k, 56), np.float32)
        lo = max(0, step - k + 1)
        s_win[k - (step + 1 - lo) :] = speaker[lo : step + 1]
        lo_l = max(0, step - k)
        if step > 0:
            l_win[k - (step - lo_l) :] = listener[lo_l:step]
        observations.append({"speaker_motion": s_win, "listener_motion": l_win, "words": words[step]})
    online = observation_features(FEATS, observations, listener)
    np.testing.assert_allclose(online, offline, atol=1e-6)
    assert offline.shape == (t, FEATS.dim)


def test_observation_features_ask_for_a_longer_window() -> None:
    obs = {"speaker_motion": np.zeros((3, 56)), "listener_motion": np.zeros((3, 56)), "words": ""}
    with pytest.raises(ValueError, match="context_frames"):
        observation_features(FEATS, [obs], np.zeros((1, 56)))


def test_criteria_error_is_the_mean_absolute_error_over_rated_criteria() -> None:
    from reward_models.training import criteria_error

    data = _known_preference_data(seed=0, episodes=2, candidates=2, t=12, w=np.zeros(FEATS.dim))
    model = TrajectoryRewardModel(RewardModelConfig(features=FEATS, hidden_sizes=(8,), ensemble_size=2))
    with torch.no_grad():  # heads that say "3" for every criterion of every trajectory
        for member in model._members():
            assert member.criteria is not None
            member.criteria.weight.zero_()
            member.criteria.bias.zero_()
    assert np.isnan(criteria_error(model, data))  # no ratings to predict
    targets = np.full((4, 4), np.nan)
    targets[0] = [5.0, 1.0, 3.0, 4.0]  # errors 2, 2, 0, 1
    targets[3, 1] = 2.5  # error 0.5; the other candidates are unrated
    rated = PairData(FEATS, data.contexts, data.frames, data.candidate_context, data.pairs, targets)
    assert criteria_error(model, rated) == pytest.approx((2 + 2 + 0 + 1 + 0.5) / 5)


def test_temporal_dilations_must_be_positive() -> None:
    with pytest.raises(ValueError, match="temporal_dilations"):
        RewardModelConfig(features=FEATS, temporal_dilations=(1, 0))
    assert RewardModelConfig(features=FEATS, temporal_dilations=[1, 2, 4, 8]).receptive_field == 31
