"""Aligning the VLA with preferences: DPO through trl, PPO through Stable-Baselines3.

Submodules import their heavy dependencies (trl, datasets, stable-baselines3) themselves; import them directly,
e.g. ``from agents.alignment.ppo import train_ppo``.
"""
