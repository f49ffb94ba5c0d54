"""Named, pluggable rewards of the listener environment.

A reward sees one clip per episode and the listener frames the agent places, one at a time:

- :meth:`EpisodeReward.reset` precomputes what it needs from the clip (keep per-step work tiny);
- :meth:`EpisodeReward.step` returns the reward for one placed frame;
- :meth:`EpisodeReward.finish` returns a terminal bonus and extra ``info`` entries at the end.

The environment accepts a registered name (``"imitation"``, ``"affect"``, ``"oracle"``), an
:class:`EpisodeReward` instance, or a plain function with the signature of :data:`RewardFn`:
``fn(clip, frame, listener_frame) -> float`` (it must not keep state between episodes).

Example:
    >>> from dyadic_env.rewards import make_reward, reward_names
    >>> reward_names()
    ['affect', 'imitation', 'oracle']
    >>> make_reward("imitation")
    ImitationReward()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from dyadic_env.expression_basis import FRAME_DIM

if TYPE_CHECKING:
    from dyadic_env.data import Clip, DyadicDataset

RewardFn = Callable[["Clip", int, np.ndarray], float]
"""A stateless reward: ``fn(clip, frame, listener_frame)`` with ``listener_frame`` the decoded ``(56,)`` frame
the agent placed at index ``frame`` of ``clip``; returns a float."""


class EpisodeReward:
    """Base class of a reward. Subclasses override :meth:`reset` and :meth:`step` (and maybe :meth:`finish`)."""

    def reset(self, clip: Clip, dataset: DyadicDataset) -> None:
        """Start an episode on ``clip`` (a clip of ``dataset``); precompute per-episode arrays here."""

    def step(self, frame: int, listener_frame: np.ndarray) -> float:
        """Reward for the decoded ``(56,)`` listener frame placed at index ``frame``."""
        raise NotImplementedError

    def finish(self) -> tuple[float, dict[str, Any]]:
        """Terminal bonus added to the last step's reward, and extra entries for the last ``info``."""
        return 0.0, {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FunctionReward(EpisodeReward):
    """Adapts a plain :data:`RewardFn` to the :class:`EpisodeReward` interface."""

    def __init__(self, fn: RewardFn) -> None:
        self.fn = fn
        self._clip: Clip | None = None

    def reset(self, clip: Clip, dataset: DyadicDataset) -> None:
        self._clip = clip

    def step(self, frame: int, listener_frame: np.ndarray) -> float:
        assert self._clip is not None, "reset() first"
        return float(self.fn(self._clip, frame, listener_frame))

    def __repr__(self) -> str:
        return f"FunctionReward({getattr(self.fn, '__name__', self.fn)!r})"


class ImitationReward(EpisodeReward):
    """Negative squared error to the ground-truth listener frame, averaged over the 56 values.

    Summed over an episode and divided by its length this is minus the L2 metric, so maximising it is
    behaviour cloning of the (possibly socially poor) ground truth.
    """

    def reset(self, clip: Clip, dataset: DyadicDataset) -> None:
        # One copy per episode: reading a memory map row by row is slower than a plain array.
        self._target = np.array(clip.listener_motion, dtype=np.float32)

    def step(self, frame: int, listener_frame: np.ndarray) -> float:
        diff = listener_frame - self._target[frame]
        return -float(np.dot(diff, diff)) / FRAME_DIM


class AffectSynchronyReward(EpisodeReward):
    """Affect synchrony: the listener's (valence, arousal) should follow the speaker's with a short lag.

    ``r_t = -sum_i w_i (A_listener(t)_i - A_speaker(t - lag)_i)^2`` with ``A`` the (valence, arousal) of a frame.
    The speaker's affect comes from the dataset when it has affect arrays, else from
    :func:`dyadic_env.synthetic.estimate_affect` (``ict-arkit`` faces). The listener's affect is read from the
    placed frame by ``estimate_affect`` on ``ict-arkit`` data, or by a linear map from frames to affect fitted
    on the dataset's own listener frames and affect arrays otherwise.

    Args:
        lag_s: how far (seconds) the listener's affect trails the speaker's.
        weights: weights of valence and arousal.
    """

    def __init__(self, lag_s: float = 0.4, weights: tuple[float, float] = (1.0, 0.5)) -> None:
        if lag_s < 0:
            raise ValueError(f"lag_s must be >= 0 seconds, found {lag_s}")
        self.lag_s, self.weights = lag_s, np.asarray(weights, dtype=np.float64)
        self._listener_affect: Callable[[np.ndarray], np.ndarray] | None = None

    def reset(self, clip: Clip, dataset: DyadicDataset) -> None:
        if self._listener_affect is None:
            self._listener_affect = listener_affect_estimator(dataset)
        if clip.speaker_affect is not None:
            speaker = np.asarray(clip.speaker_affect, dtype=np.float64)
        else:
            speaker = np.asarray(_estimate_affect(dataset)(clip.speaker_motion), dtype=np.float64)
        lag = round(self.lag_s * clip.fps)
        # Before the lag has passed, the listener answers the speaker's first frame.
        self._target = np.concatenate([np.repeat(speaker[:1], lag, axis=0), speaker])[: len(speaker)]

    def step(self, frame: int, listener_frame: np.ndarray) -> float:
        assert self._listener_affect is not None, "reset() first"
        affect = self._listener_affect(listener_frame[None])[0]
        diff = affect - self._target[frame]
        return -float(np.dot(self.weights, diff * diff))

    def __repr__(self) -> str:
        return f"AffectSynchronyReward(lag_s={self.lag_s}, weights={tuple(self.weights.tolist())})"


class OracleReward(EpisodeReward):
    """The synthetic benchmark's hidden oracle: causal per-step shaping plus the episode score at the end.

    Only for synthetic datasets (the oracle reads ``ict-arkit`` faces and knows the synthetic lexicons).
    The last step gets ``final_scale * weighted`` (paper eq. 10, in [1, 5]) and ``info["oracle_scores"]``.

    Args:
        weights: criterion weights passed to :class:`dyadic_env.synthetic.Oracle` (None: 0.25 each).
        shaping_scale: multiplier of the per-step shaping reward.
        final_scale: multiplier of the weighted episode score added at the end.
    """

    def __init__(
        self, weights: dict[str, float] | None = None, shaping_scale: float = 1.0, final_scale: float = 1.0
    ) -> None:
        self.weights, self.shaping_scale, self.final_scale = weights, shaping_scale, final_scale
        self._stepper: Any = None

    def reset(self, clip: Clip, dataset: DyadicDataset) -> None:
        require_synthetic(dataset, what="the 'oracle' reward")
        from dyadic_env.synthetic import Oracle

        oracle = Oracle(fps=clip.fps, weights=self.weights)
        self._stepper = oracle.stepper(np.asarray(clip.speaker_motion), clip.speaker_words)

    def step(self, frame: int, listener_frame: np.ndarray) -> float:
        return self.shaping_scale * float(self._stepper.step(listener_frame))

    def finish(self) -> tuple[float, dict[str, Any]]:
        scores = {k: float(v) for k, v in self._stepper.episode_scores().items()}
        return self.final_scale * scores["weighted"], {"oracle_scores": scores}

    def __repr__(self) -> str:
        return f"OracleReward(shaping_scale={self.shaping_scale}, final_scale={self.final_scale})"


_REGISTRY: dict[str, Callable[..., EpisodeReward]] = {
    "imitation": ImitationReward,
    "affect": AffectSynchronyReward,
    "oracle": OracleReward,
}


def register_reward(name: str, factory: Callable[..., EpisodeReward], *, overwrite: bool = False) -> None:
    """Make ``factory(**kwargs) -> EpisodeReward`` available to the environment as ``reward=name``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a reward named {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = factory


def reward_names() -> list[str]:
    return sorted(_REGISTRY)


def make_reward(spec: str | EpisodeReward | RewardFn, **kwargs: Any) -> EpisodeReward:
    """Build a reward from a registered name, an :class:`EpisodeReward`, or a :data:`RewardFn`."""
    if isinstance(spec, EpisodeReward):
        return spec
    if isinstance(spec, str):
        if spec not in _REGISTRY:
            raise ValueError(f"reward: expected one of {reward_names()} or a callable, found {spec!r}")
        return _REGISTRY[spec](**kwargs)
    if callable(spec):
        return FunctionReward(spec)
    raise TypeError(f"reward: expected a name, an EpisodeReward or a callable, found {type(spec).__name__}")


def is_synthetic(dataset: DyadicDataset) -> bool:
    """Whether ``dataset`` was written by the synthetic benchmark's generator."""
    manifest = dataset.manifest
    if manifest.get("synthetic") or manifest.get("generator") or manifest.get("source") == "synthetic":
        return True
    return len(dataset) > 0 and dataset.entry(0).get("source") == "synthetic"


def require_synthetic(dataset: DyadicDataset, *, what: str) -> None:
    if not is_synthetic(dataset):
        raise ValueError(
            f"{what} needs a synthetic dataset (its hidden oracle only knows the synthetic benchmark); "
            f"{dataset.path} is not one. Use dataset='synthetic:small' or another reward ('imitation', 'affect')."
        )


def _estimate_affect(dataset: DyadicDataset) -> Callable[[np.ndarray], np.ndarray]:
    if dataset.expression_basis != "ict-arkit":
        raise ValueError(
            f"affect: {dataset.path} has no affect arrays and uses the {dataset.expression_basis!r} basis; "
            "affect can be estimated only from 'ict-arkit' faces. Add speaker_affect/listener_affect arrays."
        )
    from dyadic_env.synthetic import estimate_affect

    return estimate_affect


_FITTED: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
_FIT_LOCK = threading.Lock()


def listener_affect_estimator(dataset: DyadicDataset) -> Callable[[np.ndarray], np.ndarray]:
    """A function ``(N, 56) frames -> (N, 2)`` valence/arousal for listener faces of ``dataset``.

    ``ict-arkit`` faces use the synthetic benchmark's estimator; otherwise a least-squares linear map is
    fitted once (and cached per dataset directory) on the dataset's listener frames and affect arrays.
    """
    if dataset.expression_basis == "ict-arkit":
        return _estimate_affect(dataset)
    if not dataset.has_affect:
        raise ValueError(
            f"affect: {dataset.path} ({dataset.expression_basis!r} faces) has no listener_affect array to fit an "
            "affect estimator on; add speaker_affect/listener_affect arrays or use another reward."
        )
    key = str(dataset.path.resolve())
    with _FIT_LOCK:
        if key not in _FITTED:
            from dyadic_env.metrics import LinearAffectProbe

            frames = np.asarray(dataset.arrays["listener_motion"])
            affect = np.asarray(dataset.arrays["listener_affect"])
            valence, arousal = (LinearAffectProbe.fit(frames, affect[:, i]) for i in range(2))
            _FITTED[key] = lambda x: np.stack([valence(x), arousal(x)], axis=-1)
    return _FITTED[key]
