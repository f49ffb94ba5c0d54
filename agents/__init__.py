"""Agents: the Agent protocol, baselines (LM-listener and MMLHG in ``agents.listeners``), and the VLA (SFT, DPO
through trl, PPO through SB3)."""

from agents.base import Agent, FrameAgent
from agents.baselines import (
    LinearReadoutAgent,
    MeanAgent,
    MeanSeqAgent,
    MirrorAgent,
    NearestNeighborAgent,
    NeutralAgent,
    RandomAgent,
    RandomTrainAgent,
    agent_names,
    make_agent,
    register_agent,
)
from agents.rollout import Trajectory, rollout

# Registers the learned baselines lm-listener and mmlhg (they load trained checkpoints; no torch at import).
import agents.listeners  # noqa: F401  isort: skip

__all__ = [
    "Agent", "FrameAgent", "LinearReadoutAgent", "MeanAgent", "MeanSeqAgent", "MirrorAgent", "NearestNeighborAgent",
    "NeutralAgent", "RandomAgent", "RandomTrainAgent", "Trajectory", "agent_names", "make_agent", "register_agent", "rollout",
]  # fmt: skip
