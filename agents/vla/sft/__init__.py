"""Supervised fine-tuning of the listener VLA (paper eqs. 7-9): ``dyadic train sft``.

- :mod:`~agents.vla.sft.config`: :class:`SFTConfig`, the settings (a ``model:`` section for the network);
- :mod:`~agents.vla.sft.objective`: the loss (eqs. 7-9, the speaker and nod-onset terms);
- :mod:`~agents.vla.sft.states`: the perturbed and self-sampled previous-frame states training sees;
- :mod:`~agents.vla.sft.data`: deterministic batches of clips or crops;
- :mod:`~agents.vla.sft.loop`: the training loop (``accelerate``, AdamW, TensorBoard);
- :mod:`~agents.vla.sft.checkpoints`: resumable checkpoints and the weight average.
"""

from agents.vla.sft.checkpoints import FINAL_DIR, WeightAverage, latest_checkpoint, save_checkpoint
from agents.vla.sft.config import SFTConfig
from agents.vla.sft.data import ClipBatcher
from agents.vla.sft.loop import build_sft_model, train_sft
from agents.vla.sft.objective import SFTLoss, evaluate_loss, sft_loss, training_loss

__all__ = [
    "FINAL_DIR",
    "ClipBatcher",
    "SFTConfig",
    "SFTLoss",
    "WeightAverage",
    "build_sft_model",
    "evaluate_loss",
    "latest_checkpoint",
    "save_checkpoint",
    "sft_loss",
    "train_sft",
    "training_loss",
]
