"""Gymnasium wrappers that put a learned reward into an environment."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from reward_models.features import observation_features
from reward_models.model import TrajectoryRewardModel


class LearnedRewardWrapper(gym.Wrapper):
    """Replace the env reward by a learned reward model's ensemble-mean r(observation, action).

    The env's own reward is kept in ``info["original_reward"]`` and the members' spread in
    ``info["reward_disagreement"]``. With ``disagreement_penalty`` > 0 the reward is ``mean - penalty * std``,
    a pessimistic reward that keeps a policy away from where the members disagree. With ``normalized`` (default)
    both are in units of the reward's spread on the model's training trajectories (see
    :meth:`TrajectoryRewardModel.fit_reward_scale`), so RL settings carry over between reward models.

    The step's observation is the one the action was chosen from (kept from ``reset``/the previous step); the
    action enters as the decoded frame from ``info["decoded_action"]`` (the env's own decoding). A temporal reward
    model reads the episode's last ``receptive_field`` steps, which the wrapper keeps from ``reset`` on.

    Example:
        >>> import gymnasium as gym, dyadic_env  # doctest: +SKIP
        >>> env = LearnedRewardWrapper(gym.make("dyadic_env/Listener-v0", dataset="synthetic:tiny"),
        ...                            TrajectoryRewardModel.from_pretrained("runs/rm"))  # doctest: +SKIP
    """

    def __init__(
        self,
        env: gym.Env,
        reward_model: TrajectoryRewardModel,
        *,
        disagreement_penalty: float = 0.0,
        normalized: bool = True,
    ) -> None:
        super().__init__(env)
        if disagreement_penalty < 0:
            raise ValueError(f"disagreement_penalty must be >= 0, found {disagreement_penalty}")
        self.reward_model = reward_model.eval()
        self.disagreement_penalty = float(disagreement_penalty)
        self.normalized = normalized
        self._check_window(env)
        self._last_obs: dict[str, Any] | None = None
        # The episode's last steps, which a temporal reward model reads.
        self._past = np.zeros((0, reward_model.feature_config.dim), np.float32)

    def _check_window(self, env: gym.Env) -> None:
        cfg = self.reward_model.feature_config
        for name in ("words_window_s", "max_words_chars"):
            value = getattr(env.unwrapped, name, None)
            if value is not None and abs(float(value) - float(getattr(cfg, name))) > 1e-9:
                raise ValueError(
                    f"LearnedRewardWrapper: the env's {name} is {value} but the reward model was trained with "
                    f"{getattr(cfg, name)}; make the env with {name}={getattr(cfg, name)}"
                )
        if not isinstance(env.observation_space["words"], gym.spaces.Text):  # type: ignore[index]
            raise ValueError(
                "LearnedRewardWrapper: the env's 'words' observation is no longer text; apply observation "
                "wrappers such as WordsToTokenIds outside (after) LearnedRewardWrapper"
            )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = obs
        self._past = self._past[:0]
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._last_obs is None:
            raise RuntimeError("LearnedRewardWrapper: call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        frames = np.asarray(info["decoded_action"], np.float32).reshape(-1, 56)
        # A chunk of k frames: score each frame against the same observation (the one it was chosen from).
        feats = observation_features(self.reward_model.feature_config, [self._last_obs] * len(frames), frames)
        window = np.concatenate([self._past, feats])
        self._past = window[max(0, len(window) - self.reward_model.receptive_field + 1) :]
        mean, std = self.reward_model.predict(window, normalized=self.normalized)
        mean, std = mean[-len(frames) :], std[-len(frames) :]
        info = dict(info)
        info["original_reward"] = float(reward)
        info["reward_disagreement"] = float(std.mean())
        self._last_obs = obs
        learned = float(mean.sum() - self.disagreement_penalty * std.sum())
        return obs, learned, terminated, truncated, info
