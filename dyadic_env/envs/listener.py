"""The closed-loop listener environment ``dyadic_env/Listener-v0``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import logger, spaces
from gymnasium.error import DependencyNotInstalled, ResetNeeded

from dyadic_env.data import Clip, DyadicDataset, load_dataset
from dyadic_env.envs.spaces import WORD_CHARSET, check_clip_lengths, listener_observation_space
from dyadic_env.expression_basis import FRAME_DIM
from dyadic_env.rewards import EpisodeReward, RewardFn, make_reward
from dyadic_env.tokenizer import ActionTokenizer

# Frames read from the train split when a dataset ships no tokenizer and one must be fitted.
TOKENIZER_FIT_FRAMES = 200_000


class ListenerEnv(gym.Env[dict[str, Any], np.ndarray]):
    """A listener face answers a replayed speaker, one FLAME-layout frame per step, in closed loop.

    ## Description

    One episode replays one speaker-listener clip of a dataset split. At every frame the agent sees the
    speaker's recent motion (and visual features when the dataset has them), the speaker's recent words, and
    its own past listener frames, and places the listener's frame for the current time step as 56 action
    tokens (paper section III-C2). The ground-truth listener of the clip is never observed; it is in ``info``
    for rewards and evaluation.

    ## Action Space

    ``MultiDiscrete([256] * 56)`` int64: one token per frame value (``[0:50]`` expression, ``[50:53]`` neck,
    ``[53:56]`` jaw), decoded to bin centres by the dataset's :class:`~dyadic_env.tokenizer.ActionTokenizer`.
    With ``chunk_size=k`` the action is ``(k, 56)`` and places frames ``t .. t+k-1`` (frames past the clip's
    end are ignored). :class:`~dyadic_env.wrappers.ContinuousActions` offers a ``Box`` of frame values.

    ## Observation Space

    A ``Dict`` (K = ``context_frames``):

    | key | space | meaning |
    |---|---|---|
    | ``speaker_motion`` | Box (K, 56) f32 | speaker frames ``t-K+1 .. t``, zeros where invalid |
    | ``speaker_features`` | Box (K, d) f32 | per-frame speaker features (only when the dataset has them) |
    | ``listener_motion`` | Box (K, 56) f32 | the agent's own decoded frames ``t-K .. t-1``, zeros before 0 |
    | ``mask`` | MultiBinary (K,) int8 | 1 where the speaker frame is valid |
    | ``words`` | Text | speaker words ending within the last ``words_window_s`` seconds, lowercase |
    | ``step`` | Box (1,) int64 | the current frame index ``t``, in ``[0, MAX_CLIP_FRAMES]`` |
    | ``phase`` | Box (1,) f32 | ``t / T`` for a clip of T frames: 0 at the start, 1 at the end |

    The space depends on ``context_frames``, ``max_words_chars`` and the dataset's feature width only, never
    on the split or its clips (``step``'s bound is the constant ``MAX_CLIP_FRAMES`` = 1,000,000), so a policy
    saved on one split loads on another (:mod:`dyadic_env.envs.spaces`). ``words`` is a
    :class:`~dyadic_env.envs.spaces.WordsText` (a ``Text`` space that Gymnasium's async vector env reads live).

    ## Rewards

    Pluggable through ``reward``: ``"imitation"`` (default; minus the mean squared error to the
    ground-truth listener frame), ``"affect"`` (affect synchrony with the speaker), ``"oracle"`` (synthetic
    data only: the hidden oracle's per-step shaping plus its episode score on the last step), an
    :class:`~dyadic_env.rewards.EpisodeReward`, or a function ``fn(clip, frame, listener_frame) -> float``.
    With chunks, a step's reward is the sum over its frames.

    ## Starting State

    A clip drawn uniformly from the split with the env's seeded ``np_random``, or the one named by
    ``reset(options={"clip_id": ...})`` (or ``{"clip_index": i}``). The first observation is frame 0: one valid
    speaker frame, no listener history.

    ## Episode End

    ``terminated`` is True once a frame has been placed for every frame of the clip (the clip is the task's
    horizon and ``phase`` is observed, so the end is part of the MDP). ``truncated`` is always False here; time
    limits are left to ``TimeLimit``. The final observation has ``step == T`` and an invalid (zero) current
    speaker frame. Info of every step: ``clip_id``, ``frame`` (the first frame placed), ``gt_listener_frame``
    and ``decoded_action`` (``(56,)``, or ``(k, 56)`` with chunks, zero-padded past the clip's end, with
    ``frames_placed``); the last step adds what the reward reports (e.g. ``oracle_scores``).

    ## Arguments

    ```python
    import gymnasium as gym
    import dyadic_env
    env = gym.make("dyadic_env/Listener-v0", dataset="synthetic:tiny", split="train")
    ```

    - ``dataset``: a dataset directory, ``"synthetic:PRESET"``, or an open ``DyadicDataset``.
    - ``split``: the split to replay (``"train"``, ``"val"``, ``"test"``).
    - ``context_frames``: K, frames of speaker and listener history in the observation (32).
    - ``reward``: see Rewards; ``reward_kwargs`` are passed to a named reward.
    - ``chunk_size``: frames placed per step (1).
    - ``words_window_s``: how far back the ``words`` observation reaches, seconds (3.0).
    - ``max_words_chars``: length cap of ``words``; older words are dropped first (128).
    - ``tokenizer``: an ``ActionTokenizer`` or its file; default the dataset's ``tokenizer.json``.
    - ``render_mode``: ``"rgb_array"`` renders speaker and listener side by side.

    ## Vector Envs

    ``gym.make_vec("dyadic_env/Listener-v0", num_envs=N, dataset=...)`` builds
    :class:`~dyadic_env.envs.vector.ListenerVectorEnv`: N episodes stepped with batched numpy in one
    process (the same observations, rewards and seeded clip draws as N of these envs, next-step autoreset),
    or with ``workers=W`` a :class:`~dyadic_env.envs.sharded.ShardedListenerVectorEnv` of W processes.
    Gymnasium's per-env vector envs (``vectorization_mode="sync"`` or ``"async"``) are slower than one env
    here, the step being cheaper than their per-env overheads; use them for ``chunk_size > 1`` or rendering.
    The batched envs take ``max_episode_steps`` and ``autoreset_mode="same_step"``;
    :mod:`dyadic_env.envs.sb3` adapts them to Stable-Baselines3 (docs/rl.md).

    ## Version History

    * v0: Initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # noqa: RUF012 (gymnasium convention)

    def __init__(
        self,
        dataset: str | os.PathLike | DyadicDataset,
        split: str = "train",
        *,
        context_frames: int = 32,
        reward: str | EpisodeReward | RewardFn = "imitation",
        reward_kwargs: dict[str, Any] | None = None,
        chunk_size: int = 1,
        words_window_s: float = 3.0,
        max_words_chars: int = 128,
        tokenizer: ActionTokenizer | str | os.PathLike | None = None,
        render_mode: str | None = None,
    ) -> None:
        _check_positive_int("context_frames", context_frames)
        _check_positive_int("chunk_size", chunk_size)
        _check_positive_int("max_words_chars", max_words_chars)
        if not words_window_s > 0:
            raise ValueError(f"words_window_s: expected a positive number of seconds, found {words_window_s}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode: expected one of {self.metadata['render_modes']} or None, found {render_mode!r}"
            )
        self.dataset = dataset if isinstance(dataset, DyadicDataset) else load_dataset(dataset)
        self.split_name = split
        self.clips = self.dataset.split(split)
        if len(self.clips) == 0:
            raise ValueError(
                f"{self.dataset.path}: split {split!r} has no clips; choose one of {list(self.dataset.splits)}"
            )
        check_clip_lengths(self.clips.lengths, f"{self.dataset.path} split {split!r}")
        self.clip_ids = self.clips.clip_ids
        self._index_of = {cid: i for i, cid in enumerate(self.clip_ids)}
        self.context_frames, self.chunk_size = context_frames, chunk_size
        self.words_window_s, self.max_words_chars = float(words_window_s), max_words_chars
        self.render_mode = render_mode
        self.reward_fn = make_reward(reward, **(reward_kwargs or {}))
        self.tokenizer = resolve_tokenizer(tokenizer, self.dataset)
        self.metadata = {**self.metadata, "render_fps": self.dataset.fps}
        self._centers = self.tokenizer.bin_centers.astype(np.float32)  # (56, bins) lookup table
        self._dims = np.arange(FRAME_DIM)
        self._action_shape = (FRAME_DIM,) if chunk_size == 1 else (chunk_size, FRAME_DIM)
        self.action_space = spaces.MultiDiscrete(
            np.full(self._action_shape, self.tokenizer.num_bins, dtype=np.int64)
        )
        self.observation_space = listener_observation_space(
            context_frames, max_words_chars, self.dataset.feature_dim
        )
        self.clip: Clip | None = None
        self._t = -1
        self._renderer: Any = None

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        index = self._choose_clip(options or {})
        clip = self.clips[index]
        self._load_episode(clip)
        self.reward_fn.reset(clip, self.dataset)
        return self._observation(), {"clip_id": clip.clip_id, "frame": 0, "num_frames": clip.num_frames}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._t < 0:
            raise ResetNeeded("ListenerEnv.step() called before reset(); call env.reset() first")
        if self._t >= self._num_frames:
            raise ResetNeeded(
                f"ListenerEnv.step() after the episode of clip {self.clip.clip_id!r} ended "  # type: ignore[union-attr]
                f"({self._num_frames} frames placed); call env.reset() to start a new one"
            )
        tokens = self._check_action(action)
        t = self._t
        decoded = self._centers[self._dims, tokens]  # (56,) or (k, 56): a table lookup, no tokenizer call
        if self.chunk_size == 1:
            self._listener[self.context_frames + t] = decoded
            self._tokens[t] = tokens
            reward = self.reward_fn.step(t, decoded)
            info = {
                "clip_id": self._clip_id,
                "frame": t,
                "decoded_action": decoded,
                "gt_listener_frame": self._gt[t].copy(),
            }
            self._t = t + 1
        else:
            reward, info = self._step_chunk(t, tokens, decoded)
        terminated = self._t >= self._num_frames
        if terminated:
            bonus, extra = self.reward_fn.finish()
            reward += bonus
            info.update(extra)
        if not math.isfinite(reward):
            raise ValueError(non_finite_reward_message(reward, self._clip_id, t, self.reward_fn))
        return self._observation(), reward, terminated, False, info

    def _step_chunk(self, t: int, tokens: np.ndarray, decoded: np.ndarray) -> tuple[float, dict[str, Any]]:
        k = self.chunk_size
        placed = min(k, self._num_frames - t)
        self._listener[self.context_frames + t : self.context_frames + t + placed] = decoded[:placed]
        self._tokens[t : t + placed] = tokens[:placed]
        reward = 0.0
        for i in range(placed):
            reward += self.reward_fn.step(t + i, decoded[i])
        self._t = t + placed
        info = {
            "clip_id": self._clip_id, "frame": t, "decoded_action": decoded,
            "gt_listener_frame": self._gt_padded[t : t + k].copy(), "frames_placed": placed,
        }  # fmt: skip
        return reward, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            logger.warn(
                "ListenerEnv.render() called without a render_mode; create the env with render_mode='rgb_array'"
            )
            return None
        if self.clip is None:
            raise ResetNeeded("ListenerEnv.render() called before reset(); call env.reset() first")
        if self._renderer is None:
            self._renderer = _make_renderer()
        # The latest placed frame beside the speaker frame it answered (frame 0 before any step).
        f = max(self._t - 1, 0)
        k = self.context_frames
        images = self._renderer.render_frames(
            self._speaker[k - 1 + f : k + f], self._listener[k + f : k + f + 1],
            captions=[self._words[f]], expression_basis=self.dataset.expression_basis,
        )  # fmt: skip
        return np.asarray(images[0])

    def close(self) -> None:
        renderer, self._renderer = self._renderer, None
        if renderer is not None and hasattr(renderer, "close"):
            renderer.close()

    # ------------------------------------------------------------------ episode state
    @property
    def frame_index(self) -> int:
        """Index of the next frame to place (-1 before the first reset)."""
        return self._t

    def listener_trajectory(self) -> tuple[np.ndarray, np.ndarray]:
        """The tokens ``(n, 56)`` int64 and decoded frames ``(n, 56)`` f32 placed so far this episode."""
        if self.clip is None:
            raise ResetNeeded("ListenerEnv.listener_trajectory() called before reset()")
        k = self.context_frames
        return self._tokens[: self._t].copy(), self._listener[k : k + self._t].copy()

    def storage_info(self) -> dict[str, Any]:
        """Where the episode's data lives: the dataset directory and whether the clip's arrays are memory maps."""
        arrays = {} if self.clip is None else {
            name: isinstance(getattr(self.clip, name), np.memmap)
            for name in ("speaker_motion", "listener_motion", "speaker_features") if getattr(self.clip, name) is not None
        }  # fmt: skip
        return {"dataset_path": str(self.dataset.path), "pid": os.getpid(), "memory_mapped": arrays}

    def _choose_clip(self, options: dict[str, Any], rng: np.random.Generator | None = None) -> int:
        """The clip index that ``options`` names, else one drawn with ``rng`` (default the env's ``np_random``)."""
        unknown = set(options) - {"clip_id", "clip_index"}
        if unknown:
            raise ValueError(
                f"reset options: unknown keys {sorted(unknown)}; expected 'clip_id' or 'clip_index'"
            )
        if options.get("clip_id") is not None:
            clip_id = options["clip_id"]
            if clip_id not in self._index_of:
                raise ValueError(
                    f"reset: no clip {clip_id!r} in split {self.split_name!r} of {self.dataset.path} "
                    f"({len(self.clip_ids)} clips, e.g. {self.clip_ids[:3]}); see env.unwrapped.clip_ids"
                )
            return self._index_of[clip_id]
        if options.get("clip_index") is not None:
            index = int(options["clip_index"])
            if not 0 <= index < len(self.clip_ids):
                raise ValueError(f"reset: clip_index must be in [0, {len(self.clip_ids) - 1}], found {index}")
            return index
        return int((self.np_random if rng is None else rng).integers(len(self.clip_ids)))

    def _load_episode(self, clip: Clip) -> None:
        """Lay the clip out so a step is a few slices (see ``_observation``), and clear the agent's frames."""
        k = self.context_frames
        data = episode_data(clip, k, self.words_window_s, self.max_words_chars)
        self.clip, self._clip_id, self._num_frames, self._t = clip, clip.clip_id, data.num_frames, 0
        self._speaker, self._features, self._mask = data.speaker, data.features, data.mask
        self._gt, self._words = data.gt, data.words
        # Listener rows [k, k+n) hold placed frames 0..n-1: obs at t is rows [t, t+k), frames t-k..t-1.
        self._listener = np.zeros((k + data.num_frames + self.chunk_size, FRAME_DIM), dtype=np.float32)
        self._tokens = np.zeros((data.num_frames, FRAME_DIM), dtype=np.int64)
        self._gt_padded = (
            _padded(clip.listener_motion, 0, self.chunk_size) if self.chunk_size > 1 else self._gt
        )

    def _observation(self) -> dict[str, Any]:
        t, k = self._t, self.context_frames
        # Fresh arrays every call: users keep observations, and a view would alias the next one.
        obs = {
            "speaker_motion": self._speaker[t : t + k].copy(),
            "listener_motion": self._listener[t : t + k].copy(),
            "mask": self._mask[t : t + k].copy(),
            "words": self._words[t],
            "step": np.array([t], dtype=np.int64),
            "phase": np.array([t / self._num_frames], dtype=np.float32),
        }
        if self._features is not None:
            obs["speaker_features"] = self._features[t : t + k].copy()
        return obs

    def _check_action(self, action: Any) -> np.ndarray:
        hint = " (this env places chunks of frames; see chunk_size)" if self.chunk_size > 1 else ""
        return check_tokens(action, self._action_shape, self.tokenizer.num_bins, hint)


@dataclass(frozen=True)
class EpisodeData:
    """A clip's read-only arrays laid out for slicing observations (K = context frames, n = clip frames)."""

    clip: Clip
    speaker: np.ndarray  # (K+n, 56): rows [K-1, K-1+n) hold frames 0..n-1, zeros around
    features: np.ndarray | None  # (K+n, d), same layout
    mask: np.ndarray  # (K+n,) int8: 1 on the rows holding frames
    gt: np.ndarray  # (n, 56) f32: the ground-truth listener, a plain copy (memory-map rows read slowly)
    words: list[str]  # the words observation of frames 0..n

    @property
    def num_frames(self) -> int:
        return len(self.gt)


def episode_data(clip: Clip, context_frames: int, words_window_s: float, max_words_chars: int) -> EpisodeData:
    """Precompute what observations of an episode on ``clip`` read: the obs at frame t is rows [t, t+K)."""
    k, n = context_frames, clip.num_frames
    mask = np.zeros(k + n, dtype=np.int8)
    mask[k - 1 : k - 1 + n] = 1
    data = EpisodeData(
        clip=clip,
        speaker=_padded(clip.speaker_motion, k - 1, 1),
        features=None if clip.speaker_features is None else _padded(clip.speaker_features, k - 1, 1),
        mask=mask,
        gt=np.array(clip.listener_motion, dtype=np.float32),
        words=words_per_frame(clip, words_window_s, max_words_chars),
    )
    for array in (data.speaker, data.features, data.mask, data.gt):
        if array is not None:
            array.flags.writeable = False
    return data


def check_tokens(action: Any, shape: tuple[int, ...], num_bins: int, hint: str = "") -> np.ndarray:
    """``action`` as an integer array of ``shape`` with every token in ``[0, num_bins)``, else a clear error."""
    tokens = action if type(action) is np.ndarray else np.asarray(action)
    if tokens.shape != shape:
        raise ValueError(f"action: expected tokens of shape {shape}, found {tokens.shape}{hint}")
    if tokens.dtype.kind not in "iu":
        raise TypeError(
            f"action: expected integer tokens in [0, {num_bins - 1}], found dtype {tokens.dtype}; "
            "for continuous frame values wrap the env in dyadic_env.wrappers.ContinuousActions"
        )
    # Viewed as unsigned, a negative token is huge, so one reduction checks both ends of the range.
    if tokens.dtype == np.int64:
        out_of_range = tokens.view(np.uint64).max() >= num_bins
    else:
        out_of_range = tokens.min() < 0 or tokens.max() >= num_bins
    if out_of_range:
        bad = tokens[(tokens < 0) | (tokens >= num_bins)].ravel()[0]
        raise ValueError(f"action: token {bad} out of range; tokens must be in [0, {num_bins - 1}]")
    return tokens


def non_finite_reward_message(reward: float, clip_id: str, frame: int, reward_fn: Any) -> str:
    """Why a reward of NaN or inf stops the episode: it would poison returns, advantages and every metric."""
    return (
        f"reward: {type(reward_fn).__name__} returned {reward} at frame {frame} of clip {clip_id!r}; rewards must "
        "be finite (check the reward function and the clip's data: `dyadic data validate DATASET`)"
    )


def _make_renderer() -> Any:
    try:  # lazy: pyrender and torch stay out of `import dyadic_env`
        from dyadic_env.render import Renderer
    except ImportError as e:
        raise DependencyNotInstalled(
            f"render_mode='rgb_array' needs the renderer ({e}); install it with `pip install dyadic-listener[render]`"
        ) from e
    return Renderer()


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, found {value!r}")


def _padded(array: np.ndarray, before: int, after: int) -> np.ndarray:
    out = np.zeros((before + len(array) + after, array.shape[1]), dtype=np.float32)
    out[before : before + len(array)] = array
    return out


def normalize_word(text: str) -> str:
    """Lowercase ``text`` and drop characters outside :data:`WORD_CHARSET` (the ``words`` Text space)."""
    return "".join(c for c in text.lower() if c in WORD_CHARSET).strip()


def words_per_frame(clip: Clip, window_s: float, max_chars: int) -> list[str]:
    """The ``words`` observation of frames 0..T: words ending in ``((t+1)/fps - window_s, (t+1)/fps]``."""
    words = sorted(clip.speaker_words, key=lambda w: w.end)
    ends = np.array([w.end for w in words], dtype=np.float64)
    texts = [normalize_word(w.text) for w in words]
    frame_end = np.arange(1, clip.num_frames + 2, dtype=np.float64) / clip.fps
    lo = np.searchsorted(ends, frame_end - window_s, side="right")
    hi = np.searchsorted(ends, frame_end, side="right")
    cache: dict[tuple[int, int], str] = {}
    out = []
    for a, b in zip(lo.tolist(), hi.tolist()):
        if (a, b) not in cache:
            text = " ".join(w for w in texts[a:b] if w)
            # Keep the most recent words when the window holds more than fits.
            cache[(a, b)] = text[-max_chars:].lstrip() if len(text) > max_chars else text
        out.append(cache[(a, b)])
    return out


def resolve_tokenizer(
    tokenizer: ActionTokenizer | str | os.PathLike | None, dataset: DyadicDataset
) -> ActionTokenizer:
    """The given tokenizer (object or file), else the dataset's ``tokenizer.json``, else one fitted on its train split."""
    if isinstance(tokenizer, ActionTokenizer):
        result = tokenizer
    elif tokenizer is not None:
        result = ActionTokenizer.load(tokenizer)
    else:
        result = dataset.tokenizer() or _fit_tokenizer(dataset)
    if result.dim != FRAME_DIM:
        raise ValueError(
            f"tokenizer: expected one fitted on {FRAME_DIM}-value frames, found dim {result.dim}"
        )
    return result


def _fit_tokenizer(dataset: DyadicDataset) -> ActionTokenizer:
    split = "train" if "train" in dataset.splits else dataset.splits[0]
    logger.warn(
        f"{dataset.path} has no tokenizer.json; fitting one on its {split!r} listener frames. Save one with "
        f"ActionTokenizer.fit(frames).save('{dataset.path}') so every run uses the same tokens."
    )
    clips = dataset.split(split)
    step = max(1, clips.num_frames // TOKENIZER_FIT_FRAMES)
    return ActionTokenizer.fit(np.concatenate([clip.listener_motion[::step] for clip in clips]))
