"""DPO through trl's DPOTrainer: its losses equal paper eq. 11 (and IPO, hinge, robust) on hand-computed
log-probabilities of the VLA, and training separates chosen from rejected."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents.alignment.dpo import DPOTrainingConfig, TrajectoryPair, make_dpo_trainer, train_dpo
from agents.vla import VLAForListening
from dyadic_env.data import load_dataset

BETA = 0.3


def _pairs(dataset, n_per_clip: int = 1, seed: int = 0) -> list[TrajectoryPair]:
    rng = np.random.default_rng(seed)
    out = []
    for clip in dataset.split("train"):
        for _ in range(n_per_clip):
            t = clip.num_frames
            out.append(
                TrajectoryPair(clip.clip_id, rng.integers(0, 256, (t, 56)), rng.integers(0, 256, (t, 56)))
            )
    return out


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


def _hand_losses(
    delta_w: np.ndarray, delta_l: np.ndarray, tokens: np.ndarray, eps: float
) -> dict[str, float]:
    """Per-batch means of the four losses from log-ratios delta = log pi - log pi_ref (float64, by hand)."""
    d = BETA * (delta_w - delta_l)
    sigmoid = [-_log_sigmoid(x) for x in d]  # paper eq. 11
    hinge = [max(0.0, 1.0 - x) for x in d]
    # IPO (Azar et al. 2023, eq. 17) on log-ratios averaged per token, as trl (and the IPO authors) do.
    ipo = [
        ((w / n_w - lo / n_l) - 1.0 / (2 * BETA)) ** 2
        for w, lo, n_w, n_l in zip(delta_w, delta_l, tokens, tokens)
    ]
    # Robust DPO (Chowdhury et al. 2024): unbiased under labels flipped with probability eps.
    robust = [((1 - eps) * -_log_sigmoid(x) - eps * -_log_sigmoid(-x)) / (1 - 2 * eps) for x in d]
    return {
        k: float(np.mean(v))
        for k, v in {"sigmoid": sigmoid, "hinge": hinge, "ipo": ipo, "robust": robust}.items()
    }


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge", "robust"])
def test_trl_loss_equals_the_formula_on_hand_computed_logprobs(
    tmp_path, walk_dataset_path, tiny_vla_path, loss_type
) -> None:
    dataset = load_dataset(walk_dataset_path)
    policy = VLAForListening.from_pretrained(tiny_vla_path).eval()
    reference = VLAForListening.from_pretrained(tiny_vla_path).eval()
    torch.manual_seed(1)
    with torch.no_grad():  # a reference that differs, so the log-ratios are not zero
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pairs = _pairs(dataset)
    eps = 0.2
    cfg = DPOTrainingConfig(
        beta=BETA, loss_type=loss_type, label_smoothing=eps if loss_type == "robust" else 0.0
    )
    trainer = make_dpo_trainer(policy, pairs, dataset.clip, cfg, tmp_path / "trl", reference=reference)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))

    processor = policy.processor
    clips = [dataset.clip(p.clip_id) for p in pairs]
    with torch.no_grad():
        logp = {}
        for name, model in (("pi", policy), ("ref", reference)):
            for side in ("chosen", "rejected"):
                tokens = [getattr(p, f"{side}_tokens") for p in pairs]
                logp[name, side] = (
                    model.sequence_logprobs(processor.clips_batch(clips, tokens)).double().numpy()
                )
    delta_w = logp["pi", "chosen"] - logp["ref", "chosen"]
    delta_l = logp["pi", "rejected"] - logp["ref", "rejected"]
    assert np.abs(delta_w).min() > 1e-3, "the reference should differ from the policy"
    n_tokens = np.array([c.num_frames * 56 for c in clips], dtype=np.float64)
    expected = _hand_losses(delta_w, delta_l, n_tokens, eps)[loss_type]
    assert trl_loss == pytest.approx(expected, rel=2e-4, abs=1e-5)


def test_dpo_training_prefers_the_chosen_trajectories(tmp_path, walk_dataset_path, tiny_vla_path) -> None:
    dataset = load_dataset(walk_dataset_path)
    pairs = _pairs(dataset, n_per_clip=2)
    cfg = DPOTrainingConfig(beta=0.1, num_epochs=4, batch_size=4, learning_rate=1e-3, logging_steps=1)
    out, metrics = train_dpo(
        tiny_vla_path, pairs, dataset.clip, cfg, tmp_path / "dpo", log_dir=tmp_path / "tb"
    )
    trained = VLAForListening.from_pretrained(out).eval()
    sft = VLAForListening.from_pretrained(tiny_vla_path).eval()
    clips = [dataset.clip(p.clip_id) for p in pairs]
    with torch.no_grad():
        margins = []
        for model in (sft, trained):
            chosen = model.sequence_logprobs(
                model.processor.clips_batch(clips, [p.chosen_tokens for p in pairs])
            )
            rejected = model.sequence_logprobs(
                model.processor.clips_batch(clips, [p.rejected_tokens for p in pairs])
            )
            margins.append((chosen - rejected).numpy())
    gained = margins[1] - margins[0]
    assert (gained > 0).all(), f"implicit reward margins should grow for every pair: {gained}"
    assert metrics["rewards/accuracies"] == 1.0 and metrics["rewards/margins"] > 0
    assert (out / "dpo_config.json").exists() and (out / "dpo_log.jsonl").exists()
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_dpo_config_names_bad_fields() -> None:
    with pytest.raises(ValueError, match="loss_type"):
        DPOTrainingConfig(loss_type="nope")
    with pytest.raises(ValueError, match="unknown fields"):
        DPOTrainingConfig.from_dict({"betta": 0.1})
    with pytest.raises(ValueError, match="label_smoothing"):
        DPOTrainingConfig(loss_type="robust", label_smoothing=0.5)
    with pytest.raises(ValueError, match="token_weight"):
        DPOTrainingConfig(token_weight=0.0)


def test_random_prefer_flips_about_half_and_sft_preferred_imitates(
    tmp_path, walk_dataset_path, tiny_vla_path
) -> None:
    from agents.alignment.ablations import ContinueSFTConfig, continue_sft, randomize_labels

    dataset = load_dataset(walk_dataset_path)
    pairs = _pairs(dataset, n_per_clip=25)
    flipped = randomize_labels(pairs, seed=0)
    swapped = [np.array_equal(f.chosen_tokens, p.rejected_tokens) for f, p in zip(flipped, pairs)]
    assert 0.3 < np.mean(swapped) < 0.7
    assert swapped == [
        np.array_equal(f.chosen_tokens, p.rejected_tokens) for f, p in zip(randomize_labels(pairs, 0), pairs)
    ]

    chosen = [(p.clip_id, p.chosen_tokens) for p in pairs[:4]]
    out = continue_sft(
        tiny_vla_path,
        chosen,
        dataset.clip,
        ContinueSFTConfig(num_epochs=20, batch_size=4, learning_rate=3e-3),
        tmp_path / "sftp",
    )
    clips = [dataset.clip(c) for c, _ in chosen]
    with torch.no_grad():
        logp = [
            VLAForListening.from_pretrained(p).sequence_logprobs(
                VLAForListening.from_pretrained(p).processor.clips_batch(clips, [t for _, t in chosen])
            )
            for p in (tiny_vla_path, out)
        ]
    assert bool((logp[1] > logp[0]).all()), "continued SFT should raise the likelihood of its trajectories"


def test_dpo_on_trajectory_prefixes_scores_exactly_the_prefix(
    tmp_path, walk_dataset_path, tiny_vla_path
) -> None:
    """With max_frames, trl's loss is eq. 11 on the log-probabilities of the first frames only."""
    dataset = load_dataset(walk_dataset_path)
    policy = VLAForListening.from_pretrained(tiny_vla_path).eval()
    reference = VLAForListening.from_pretrained(tiny_vla_path).eval()
    torch.manual_seed(2)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pairs, w = _pairs(dataset), 10
    trainer = make_dpo_trainer(
        policy, pairs, dataset.clip, DPOTrainingConfig(beta=BETA, max_frames=w), tmp_path, reference=reference
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
        clips = [dataset.clip(p.clip_id) for p in pairs]
        logp = {}
        for name, model in (("pi", policy), ("ref", reference)):
            for side in ("chosen", "rejected"):
                full = model.step_logprobs(
                    model.processor.clips_batch(clips, [getattr(p, f"{side}_tokens") for p in pairs])
                )
                logp[name, side] = full[:, :w].sum(-1).double().numpy()
    d = BETA * (
        (logp["pi", "chosen"] - logp["ref", "chosen"]) - (logp["pi", "rejected"] - logp["ref", "rejected"])
    )
    assert trl_loss == pytest.approx(float(np.mean([-_log_sigmoid(x) for x in d])), rel=2e-4, abs=1e-5)


def _gesture_policies(tmp_path, walk_dataset_path, tiny_vla_kwargs):
    """A tiny VLA with nod gestures saved at ``tmp_path/sft``, a perturbed copy as reference, and pairs."""
    from agents.vla.factory import model_for_dataset

    dataset = load_dataset(walk_dataset_path)
    torch.manual_seed(0)
    policy = model_for_dataset(dataset, seed=0, gesture_frames=4, **tiny_vla_kwargs).eval()
    with torch.no_grad():
        policy.vla.action_head.phase_embed.weight.normal_(0.0, 1.0)
    policy.save_pretrained(tmp_path / "sft")
    reference = VLAForListening.from_pretrained(tmp_path / "sft").eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return dataset, policy, reference, _pairs(dataset)


def test_dpo_on_a_gesture_vla_scores_the_tokens_given_the_nods_found(
    tmp_path, walk_dataset_path, tiny_vla_kwargs
) -> None:
    """trl's flat view of a VLA with nod gestures: eq. 11 on the tokens' log-probabilities given the nods
    found in each trajectory (the nod decisions stay with SFT); training runs and keeps the gestures."""
    dataset, policy, reference, pairs = _gesture_policies(tmp_path, walk_dataset_path, tiny_vla_kwargs)
    trainer = make_dpo_trainer(
        policy, pairs, dataset.clip, DPOTrainingConfig(beta=BETA), tmp_path / "trl", reference=reference
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
    clips = [dataset.clip(p.clip_id) for p in pairs]
    keys = ("speaker_inputs", "prev_listener", "word_ids", "word_mask", "frame_mask", "actions")
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
        logp = {}
        for name, model in (("pi", policy), ("ref", reference)):
            for side in ("chosen", "rejected"):
                frames = model.processor.clips_batch(clips, [getattr(p, f"{side}_tokens") for p in pairs])
                out = model(**{k: frames[k] for k in keys})
                tokens = (
                    torch.log_softmax(out.logits, -1).gather(-1, frames["actions"][..., None]).squeeze(-1)
                )
                logp[name, side] = (tokens.sum(-1) * frames["frame_mask"]).sum(-1).double().numpy()
        assert bool(model.vla.gesture_targets(frames["actions"], frames["frame_mask"])[0].any())
    d = BETA * (
        (logp["pi", "chosen"] - logp["ref", "chosen"]) - (logp["pi", "rejected"] - logp["ref", "rejected"])
    )
    assert trl_loss == pytest.approx(float(np.mean([-_log_sigmoid(x) for x in d])), rel=2e-4, abs=1e-5)
    out, _ = train_dpo(
        tmp_path / "sft", pairs, dataset.clip, DPOTrainingConfig(batch_size=4), tmp_path / "dpo"
    )
    assert VLAForListening.from_pretrained(out).config.gesture_frames == 4


@pytest.mark.parametrize(
    ("action_frames", "token_weight", "window"), [(0, 1.0, 0), (3, 1.0, 0), (0, 0.25, 0), (0, 1.0, 5)]
)
def test_dpo_with_nod_decisions_is_eq11_on_the_whole_closed_loop_logprob(
    tmp_path, walk_dataset_path, tiny_vla_kwargs, action_frames, token_weight, window
) -> None:
    """nod_decisions: trl's loss is eq. 11 on step_logprobs (tokens and nod decisions); action_frames keeps the
    tokens of the first frames only while every frame's decision counts; token_weight scales the tokens;
    cache_window scores each frame with the past a cache of ``max_context_frames`` frames keeps."""
    dataset, policy, reference, pairs = _gesture_policies(tmp_path, walk_dataset_path, tiny_vla_kwargs)
    for model in (policy, reference):
        model.config.max_context_frames = window
    config = DPOTrainingConfig(
        beta=BETA, nod_decisions=True, action_frames=action_frames, token_weight=token_weight,
        cache_window=bool(window),
    )  # fmt: skip
    trainer = make_dpo_trainer(policy, pairs, dataset.clip, config, tmp_path / "trl", reference=reference)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
    clips = [dataset.clip(p.clip_id) for p in pairs]
    keys = ("speaker_inputs", "prev_listener", "word_ids", "word_mask", "frame_mask", "actions")
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
        logp, decided = {}, 0.0
        for name, model in (("pi", policy), ("ref", reference)):
            for side in ("chosen", "rejected"):
                frames = model.processor.clips_batch(clips, [getattr(p, f"{side}_tokens") for p in pairs])
                out = model(**{k: frames[k] for k in keys}, frame_window=window)
                if window:  # the window binds: the whole past gives other log-probs
                    full = model(**{k: frames[k] for k in keys})
                    assert not torch.allclose(full.logits, out.logits)
                tokens = (
                    torch.log_softmax(out.logits, -1).gather(-1, frames["actions"][..., None]).squeeze(-1)
                )
                tokens = tokens.sum(-1) * frames["frame_mask"]
                if action_frames:
                    tokens[:, action_frames:] = 0
                tokens = tokens * token_weight
                nods = model.vla.gesture_logprobs(out.frame_hidden, frames["actions"], frames["frame_mask"])
                decided += float(nods.abs().sum())
                logp[name, side] = (tokens + nods * frames["frame_mask"]).sum(-1).double().numpy()
    assert decided > 0, "the nod decisions must enter the log-probability"
    d = BETA * (
        (logp["pi", "chosen"] - logp["ref", "chosen"]) - (logp["pi", "rejected"] - logp["ref", "rejected"])
    )
    assert trl_loss == pytest.approx(float(np.mean([-_log_sigmoid(x) for x in d])), rel=2e-4, abs=1e-5)
    out, _ = train_dpo(tmp_path / "sft", pairs, dataset.clip, DPOTrainingConfig(batch_size=4, nod_decisions=True),
                       tmp_path / "dpo")  # fmt: skip
    assert VLAForListening.from_pretrained(out).config.gesture_frames == 4


@pytest.mark.parametrize("wpo", [False, True])
def test_trajectory_logprobs_give_the_policy_its_metrics_and_the_reference_only_logprobs(
    tmp_path, walk_dataset_path, tiny_vla_kwargs, wpo
) -> None:
    """trl reads only the reference's log-probs and the policy's detached metrics (WPO's weights when it
    weights): the policy computes those, the reference none, and no metric carries a gradient."""
    from agents.alignment.trajectory_logprobs import METRICS, use_trajectory_logprobs

    dataset, policy, reference, pairs = _gesture_policies(tmp_path, walk_dataset_path, tiny_vla_kwargs)
    config = DPOTrainingConfig(beta=BETA, nod_decisions=True, extra_args={"use_weighting": wpo})
    trainer = make_dpo_trainer(policy, pairs, dataset.clip, config, tmp_path / "trl", reference=reference)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    inputs = {k: batch[k] for k in ("input_ids", "speaker_inputs", "word_ids", "word_mask", "frame_mask")}
    pi = trainer.model(**inputs, fused_lm_head=True)
    with torch.no_grad():
        ref = trainer.ref_model(**inputs, fused_lm_head=True)
    assert pi.log_probs.requires_grad and ref.log_probs is not None
    assert all(getattr(ref, name) is None for name in METRICS)
    asked = [m for m in METRICS if m != "log_sum_sq_probs" or wpo]
    assert all(getattr(pi, m) is not None and not getattr(pi, m).requires_grad for m in asked)
    assert (pi.log_sum_sq_probs is None) is not wpo
    with pytest.raises(ValueError, match="unknown"):
        use_trajectory_logprobs(policy, outputs=["entropy", "perplexity"])
