"""DPO's implicit reward (reward_models.implicit): the margin trl's DPO loss sees, read as a reward model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.alignment.dpo import DPOTrainingConfig, make_dpo_trainer, train_dpo
from agents.vla import VLAForListening
from dyadic_env.data import load_dataset
from reward_models.implicit import ImplicitReward, ImplicitRewardConfig, implicit_pair_accuracy
from tests.agents.alignment.test_dpo import BETA, _gesture_policies, _log_sigmoid


@pytest.mark.parametrize(
    ("action_frames", "token_weight", "window"), [(0, 1.0, 0), (3, 1.0, 0), (0, 0.25, 0), (0, 1.0, 5)]
)
def test_the_implicit_reward_margin_is_the_one_trls_dpo_loss_sees(
    tmp_path, walk_dataset_path, tiny_vla_kwargs, action_frames, token_weight, window
) -> None:
    dataset, policy, reference, pairs = _gesture_policies(tmp_path, walk_dataset_path, tiny_vla_kwargs)
    for model in (policy, reference):
        model.config.max_context_frames = window
    dpo = DPOTrainingConfig(beta=BETA, nod_decisions=True, action_frames=action_frames, token_weight=token_weight,
                            cache_window=bool(window))  # fmt: skip
    trainer = make_dpo_trainer(policy, pairs, dataset.clip, dpo, tmp_path / "trl", reference=reference)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
    config = ImplicitRewardConfig(beta=BETA, nod_decisions=True, action_frames=action_frames,
                                  token_weight=token_weight, frame_window=window, batch_size=3)  # fmt: skip
    reward = ImplicitReward(policy, reference, config)
    clips = [dataset.clip(p.clip_id) for p in pairs]
    margin = reward.score(clips, [p.chosen_tokens for p in pairs]) - reward.score(
        clips, [p.rejected_tokens for p in pairs]
    )
    assert trl_loss == pytest.approx(float(np.mean([-_log_sigmoid(x) for x in margin])), rel=2e-4, abs=1e-5)


def test_a_dpo_checkpoint_scores_its_training_pairs_and_its_own_sft_scores_zero(
    tmp_path, walk_dataset_path, tiny_vla_kwargs
) -> None:
    dataset, _, _, pairs = _gesture_policies(tmp_path, walk_dataset_path, tiny_vla_kwargs)
    config = DPOTrainingConfig(beta=0.5, nod_decisions=True, token_weight=0.125, num_epochs=8, batch_size=4,
                               learning_rate=3e-3)  # fmt: skip
    out, _ = train_dpo(tmp_path / "sft", pairs, dataset.clip, config, tmp_path / "dpo")
    reward = ImplicitReward.from_pretrained(out, tmp_path / "sft")
    assert (reward.config.beta, reward.config.token_weight, reward.config.nod_decisions) == (0.5, 0.125, True)
    assert implicit_pair_accuracy(reward, pairs, dataset.clip) == 1.0
    sft = VLAForListening.from_pretrained(tmp_path / "sft")
    same = ImplicitReward(sft, VLAForListening.from_pretrained(tmp_path / "sft"), reward.config)
    clips = [dataset.clip(p.clip_id) for p in pairs]
    assert np.allclose(same.score(clips, [p.chosen_tokens for p in pairs]), 0.0)
    assert np.isnan(implicit_pair_accuracy(reward, [], dataset.clip))


def test_implicit_reward_errors_name_what_to_fix(tmp_path, tiny_vla_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a DPO checkpoint"):
        ImplicitRewardConfig.from_dpo_checkpoint(tiny_vla_path)
    with pytest.raises(ValueError, match="beta"):
        ImplicitRewardConfig(beta=0.0)
    policy = VLAForListening.from_pretrained(tiny_vla_path)
    reward = ImplicitReward(policy, policy, ImplicitRewardConfig())
    with pytest.raises(ValueError, match="2 clips but 1 trajectories"):
        reward.score([None, None], [np.zeros((3, 56), np.int64)])
    (tmp_path / "dpo_config.json").write_text(json.dumps({"beta": 0.2, "cache_window": True}))
    (tmp_path / "config.json").write_text(json.dumps({"max_context_frames": 7}))
    assert ImplicitRewardConfig.from_dpo_checkpoint(tmp_path).frame_window == 7


def test_episode_ppo_gets_the_implicit_reward_frame_by_frame(
    tmp_path, walk_dataset_path, tiny_vla_kwargs
) -> None:
    from agents.alignment.episode_ppo import collect_episodes
    from agents.alignment.episode_rewards import episode_rewards
    from experiments.pipelines.trainers import episode_ppo_reward
    from reward_models.implicit import ImplicitTrajectoryReward

    dataset, policy, reference, _ = _gesture_policies(tmp_path, walk_dataset_path, tiny_vla_kwargs)
    implicit = ImplicitReward(
        policy, reference, ImplicitRewardConfig(beta=BETA, nod_decisions=True, batch_size=2)
    )
    reward = episode_ppo_reward(ImplicitTrajectoryReward(implicit))
    with pytest.raises(ValueError, match=r"disagreement_penalty .* set it to 0"):
        episode_ppo_reward(reward, disagreement_penalty=1.0)
    clips = list(dataset.split("train"))[:3]
    trajectories = collect_episodes(policy, clips, seed=0).trajectories()
    tokenizer = policy.processor.action_tokenizer
    per_frame = episode_rewards(reward, clips, trajectories, dataset, tokenizer)  # from the decoded frames
    assert [len(r) for r in per_frame] == [c.num_frames for c in clips]
    np.testing.assert_allclose([r.sum() for r in per_frame], implicit.score(clips, trajectories), rtol=1e-6)


def test_the_ppo_implicit_algorithm_trains_dpo_then_ppo_from_sft(
    tmp_path, walk_dataset_path, tiny_vla_path
) -> None:
    from experiments.errors import UserError
    from experiments.pipelines.aligners import AlignmentTask, load_algorithm
    from tests.agents.alignment.test_dpo import _pairs

    with pytest.raises(ValueError, match="episodes_per_rolout"):
        load_algorithm("ppo_implicit", {"episode_ppo": {"episodes_per_rolout": 2}})
    with pytest.raises(UserError, match="pairing"):
        load_algorithm("ppo_implicit", {"dpo": {"pairing": "all"}})
    algorithm = load_algorithm("ppo_implicit", {
        "dpo": {"beta": 0.5, "num_epochs": 1, "batch_size": 2},
        "episode_ppo": {"total_steps": 1, "episodes_per_rollout": 2, "minibatch_episodes": 2, "kl_coef": 0.1},
    })  # fmt: skip
    dataset = load_dataset(walk_dataset_path)
    task = AlignmentTask(
        sft=tiny_vla_path, pairs=_pairs(dataset), groups=[], dataset=dataset, budget=4, seed=3,
        out=tmp_path / "cell", collect=None, num_threads=1,
    )  # fmt: skip
    policy = algorithm(task)
    assert json.loads((tmp_path / "cell/reward/policy/dpo_config.json").read_text())["num_pairs"] == 4
    assert json.loads((policy / "episode_ppo_config.json").read_text())["seed"] == 3
    trained = VLAForListening.from_pretrained(policy).state_dict()
    start = VLAForListening.from_pretrained(tiny_vla_path).state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in start)


def test_ppo_implicit_takes_its_reward_from_a_finished_dpo_row_of_the_results_folder(
    tmp_path, walk_dataset_path, tiny_vla_path
) -> None:
    from experiments.benchmark.protocol import Cell
    from experiments.errors import UserError
    from experiments.pipelines.aligners import AlignmentTask, load_algorithm
    from tests.agents.alignment.test_dpo import _pairs

    dpo = {"beta": 0.5, "num_epochs": 1, "batch_size": 2}
    ppo = {"total_steps": 1, "episodes_per_rollout": 2, "minibatch_episodes": 2}
    dataset = load_dataset(walk_dataset_path)
    results = tmp_path / "results"
    finished = Cell("dpo_row", 4, 3).directory(results)

    def run(settings: dict, name: str) -> list[str]:
        logged: list[str] = []
        task = AlignmentTask(
            sft=tiny_vla_path, pairs=_pairs(dataset), groups=[], dataset=dataset, budget=4, seed=3,
            out=tmp_path / name, collect=None, log=logged.append, num_threads=1,
            other_cell=lambda row: Cell(row, 4, 3).directory(results),
        )  # fmt: skip
        load_algorithm("ppo_implicit", {"dpo": settings, "episode_ppo": ppo, "reward_cell": "dpo_row"})(task)
        return logged

    # The row is not finished: this cell trains its own DPO.
    assert "not finished" in run(dpo, "first")[0]
    assert (tmp_path / "first/reward/policy/dpo_config.json").exists()
    # Finished with the same settings: its checkpoint is the reward and no DPO is trained here.
    finished.mkdir(parents=True)
    (tmp_path / "first/reward/policy").rename(finished / "policy")
    (finished / "result.json").write_text(json.dumps({"spec": "dpo", "settings": dpo}))
    assert "the finished DPO" in run(dpo, "second")[0]
    assert not (tmp_path / "second/reward").exists()
    # Finished with other settings: an error that names the row, not a silently different reward.
    with pytest.raises(UserError, match=r"dpo_row.*other settings"):
        run({**dpo, "beta": 0.1}, "third")
