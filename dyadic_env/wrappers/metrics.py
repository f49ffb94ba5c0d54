"""Episode statistics with the paper's metrics, reported in ``info`` when an episode ends."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from dyadic_env.rewards import is_synthetic, listener_affect_estimator


class EpisodeMetrics(gym.Wrapper):
    """On the last step of an episode, add ``info["episode_metrics"]``: the clip's metrics and return.

    Keys: L2, FD, P-FD, Variation, Diversity (:func:`dyadic_env.metrics.evaluate` on this one clip), L2 Affect
    when an affect estimator exists for the data, the oracle's criteria on synthetic data (``oracle=None``
    decides by the dataset), ``return`` and ``length`` (steps).

    Example:
        >>> import gymnasium as gym, dyadic_env, tempfile
        >>> from dyadic_env.envs.testing import write_random_walk_dataset
        >>> from dyadic_env.wrappers import EpisodeMetrics
        >>> env = EpisodeMetrics(gym.make("dyadic_env/Listener-v0",
        ...                      dataset=write_random_walk_dataset(tempfile.mkdtemp() + "/d")))
        >>> _ = env.reset(seed=0)
        >>> done = False
        >>> while not done:
        ...     _, _, done, _, info = env.step(env.action_space.sample())
        >>> sorted(info["episode_metrics"])
        ['Diversity', 'FD', 'L2', 'P-FD', 'Variation', 'length', 'return']
    """

    def __init__(self, env: gym.Env, *, seed: int = 0, oracle: bool | None = None) -> None:
        super().__init__(env)
        dataset = env.unwrapped.dataset  # type: ignore[attr-defined]
        self.seed = seed
        self.oracle = is_synthetic(dataset) if oracle is None else oracle
        self._valence = _valence_estimator(dataset)
        self._return, self._length = 0.0, 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._return, self._length = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        if terminated or truncated:
            info = {**info, "episode_metrics": self.compute()}
        return obs, reward, terminated, truncated, info

    def compute(self) -> dict[str, float]:
        """Metrics of the frames placed so far in this episode (normally called for you at its end)."""
        from dyadic_env.metrics import evaluate

        base = self.env.unwrapped
        _, predicted = base.listener_trajectory()  # type: ignore[attr-defined]
        n = len(predicted)
        result = {"return": self._return, "length": float(self._length)}
        if n == 0:
            return result
        clip = base.clip  # type: ignore[attr-defined]
        gt, speaker = np.asarray(clip.listener_motion[:n]), np.asarray(clip.speaker_motion[:n])
        affect = {}
        if self._valence is not None:
            affect = {
                "predicted_affect": [self._valence(predicted)],
                "ground_truth_affect": [self._valence(gt)],
            }
        result.update(evaluate([predicted], [gt], [speaker], seed=self.seed, **affect))
        if self.oracle:
            from dyadic_env.synthetic import Oracle

            scores = Oracle(fps=clip.fps).score(speaker, predicted, clip.speaker_words)
            result.update({k: float(v) for k, v in scores.items()})
        return result


def _valence_estimator(dataset: Any) -> Any:
    """Valence ``(T,)`` of frames, or None when the data offers no way to read affect."""
    try:
        estimator = listener_affect_estimator(dataset)
    except (ValueError, ImportError):
        return None
    return lambda frames: estimator(frames)[:, 0]
