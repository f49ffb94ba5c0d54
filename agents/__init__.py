"""Agents: the Agent protocol, baselines, and the VLA (SFT, DPO through trl, PPO through SB3)."""
