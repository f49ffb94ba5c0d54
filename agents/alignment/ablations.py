"""The ablations of paper Table IV that need their own training: Random-Prefer and SFT-Preferred.

- Random-Prefer: DPO on the same pairs with random labels (each pair's chosen and rejected swapped with
  probability 1/2, seeded): what DPO does with no preference signal.
- SFT-Preferred: continued supervised fine-tuning, from the SFT checkpoint, on the preferred trajectories only
  (paper eqs. 7-9 with the VLA's own loss): supervision on positives alone, without DPO's contrast.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.alignment.dpo import PairLike, TrajectoryPair


def randomize_labels(pairs: Sequence[PairLike], seed: int = 0) -> list[TrajectoryPair]:
    """The pairs with chosen and rejected swapped for a seeded random half (Random-Prefer)."""
    flips = np.random.default_rng([seed, 7]).random(len(pairs)) < 0.5
    return [
        TrajectoryPair(p.clip_id, p.rejected_tokens, p.chosen_tokens) if flip
        else TrajectoryPair(p.clip_id, p.chosen_tokens, p.rejected_tokens)
        for p, flip in zip(pairs, flips)
    ]  # fmt: skip


@dataclass
class ContinueSFTConfig:
    """Continued SFT on given trajectories (SFT-Preferred).

    Attributes:
        num_epochs: passes over the trajectories.
        batch_size: trajectories per step.
        learning_rate: AdamW learning rate (constant after a short warmup).
        warmup_steps: linear warmup steps.
        lambda_exp, lambda_pose, lambda_temp: the SFT loss weights (paper eqs. 7-9).
        grad_clip: gradient-norm clipping (0: none).
        seed: seeds the batch order.
    """

    num_epochs: float = 3.0
    batch_size: int = 8
    learning_rate: float = 5e-5
    warmup_steps: int = 5
    lambda_exp: float = 1.0
    lambda_pose: float = 1.0
    lambda_temp: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_epochs <= 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("continue-sft config: num_epochs and learning_rate must be > 0, batch_size >= 1")


def continue_sft(
    policy_path: str | os.PathLike,
    trajectories: Sequence[tuple[str, np.ndarray]],
    clips: Mapping[str, Any] | Callable[[str], Any],
    config: ContinueSFTConfig,
    out: str | os.PathLike,
    *,
    log_dir: str | os.PathLike | None = None,
) -> Path:
    """Fine-tune the checkpoint at ``policy_path`` on ``(clip_id, tokens (T, 56))`` trajectories; save to ``out``."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from agents.vla import VLAForListening
    from agents.vla.sft import sft_loss

    if not trajectories:
        raise ValueError("continue_sft needs at least one trajectory")
    lookup = clips.__getitem__ if isinstance(clips, Mapping) else clips
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model = VLAForListening.from_pretrained(policy_path)
    processor = model.processor
    examples = [processor.clip_example(lookup(cid), np.asarray(tok)) for cid, tok in trajectories]
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, betas=(0.9, 0.95)
    )
    steps_per_epoch = -(-len(examples) // config.batch_size)
    total = max(1, round(config.num_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, config.warmup_steps))
    )
    writer = SummaryWriter(str(log_dir or partial / "tb"))
    rng = np.random.default_rng(config.seed)
    order: list[int] = []
    model.train()
    for step in range(total):
        if len(order) < config.batch_size:
            order += rng.permutation(len(examples)).tolist()
        idx, order = order[: config.batch_size], order[config.batch_size :]
        batch = processor.collate([examples[i] for i in idx])
        logits = model(**batch).logits
        centers: torch.Tensor = model.vla.bin_centers  # type: ignore[assignment]
        loss = sft_loss(
            logits, batch["actions"], batch["frame_mask"], centers, lambda_exp=config.lambda_exp,
            lambda_pose=config.lambda_pose, lambda_temp=config.lambda_temp, expression_dim=model.config.expression_dim,
        )  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        writer.add_scalar("losses/total", float(loss.total.detach()), step)
    writer.close()
    model.eval()
    model.save_pretrained(partial)
    (partial / "continue_sft_config.json").write_text(
        json.dumps(
            {**asdict(config), "policy": str(policy_path), "num_trajectories": len(examples)}, indent=1
        )
    )
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return out
