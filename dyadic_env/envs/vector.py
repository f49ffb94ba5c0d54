"""The batched listener env: many episodes per step, for a cheap env whose per-env overheads would dominate.

A listener step costs microseconds (``dyadic bench env``), while Gymnasium's SyncVectorEnv adds its per-env
Python loop and per-key info merging, and AsyncVectorEnv an inter-process round trip per env per step: both are
slower than one env.
:class:`ListenerVectorEnv` steps N episodes with batched numpy in one process; its sharded form, over several
processes, is :class:`~dyadic_env.envs.sharded.ShardedListenerVectorEnv`. Both are what
``gymnasium.make_vec("dyadic_env/Listener-v0", num_envs=N)`` builds (``workers=W`` for the sharded one), with
Gymnasium 1.x next-step autoreset and vector-format infos.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dyadic_env.data import DyadicDataset
from dyadic_env.envs.listener import ListenerEnv, check_tokens, episode_data, non_finite_reward_message
from dyadic_env.expression_basis import FRAME_DIM
from dyadic_env.rewards import EpisodeReward, ImitationReward, make_reward

SyncHint = "gymnasium.make_vec(..., vectorization_mode='sync')"
AUTORESET_MODES = {
    "next_step": AutoresetMode.NEXT_STEP, "NextStep": AutoresetMode.NEXT_STEP,
    "same_step": AutoresetMode.SAME_STEP, "SameStep": AutoresetMode.SAME_STEP,
}  # fmt: skip


def check_vector_options(
    num_envs: Any,
    chunk_size: Any,
    render_mode: Any,
    max_episode_steps: Any = None,
    autoreset_mode: Any = None,
) -> AutoresetMode:
    """Reject what the batched envs do not support, saying what to use instead; the autoreset mode."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs: expected a positive integer, found {num_envs!r}")
    if max_episode_steps is not None and (
        isinstance(max_episode_steps, bool)
        or not isinstance(max_episode_steps, (int, np.integer))
        or max_episode_steps < 1
    ):
        raise ValueError(
            f"max_episode_steps: expected a positive integer or None (no limit), found {max_episode_steps!r}"
        )
    if chunk_size != 1:
        raise ValueError(
            f"chunk_size: the batched listener env places one frame per step (chunk_size=1), found {chunk_size!r}; "
            f"for chunks use {SyncHint} or 'async'"
        )
    if render_mode is not None:
        raise ValueError(
            f"render_mode: the batched listener env does not render, found {render_mode!r}; "
            f"use {SyncHint} with render_mode='rgb_array'"
        )
    if autoreset_mode is None or isinstance(autoreset_mode, AutoresetMode):
        mode = autoreset_mode or AutoresetMode.NEXT_STEP
    else:
        mode = AUTORESET_MODES.get(str(autoreset_mode))  # type: ignore[assignment]
    if mode not in AUTORESET_MODES.values():
        raise ValueError(
            f"autoreset_mode: expected 'next_step' or 'same_step' (or Gymnasium's AutoresetMode.NEXT_STEP or "
            f"SAME_STEP), found {autoreset_mode!r}"
        )
    return mode


def slot_options(options: dict[str, Any] | None, num_envs: int) -> list[dict[str, Any]]:
    """Per-env reset options from ``{"clip_id": [...]}`` or ``{"clip_index": [...]}`` (None entries: draw)."""
    options = options or {}
    unknown = set(options) - {"clip_id", "clip_index"}
    if unknown:
        raise ValueError(
            f"reset options: unknown keys {sorted(unknown)}; expected 'clip_id' or 'clip_index', each a "
            f"sequence of {num_envs} entries (None to draw a clip)"
        )
    per_env: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, values in options.items():
        if values is None:
            continue
        if (
            isinstance(values, (str, bytes))
            or not isinstance(values, (Sequence, np.ndarray))
            or len(values) != num_envs
        ):
            raise ValueError(
                f"reset options: {key!r} must be a sequence of {num_envs} entries, one per env "
                f"(None to draw a clip), found {values!r}"
            )
        for opts, value in zip(per_env, values):
            opts[key] = value
    return per_env


class ListenerVectorEnv(VectorEnv):
    """``num_envs`` listener episodes of one dataset split, stepped together with batched numpy.

    Same spaces (batched), observations, rewards and clip draws as ``num_envs`` :class:`ListenerEnv`
    (env ``i`` seeded ``seed + i``, as Gymnasium's SyncVectorEnv does), with next-step autoreset: the step
    after an env terminates ignores its action and returns its first observation of a new clip, reward 0.
    Infos are in Gymnasium's vector format (arrays and ``_key`` masks): ``clip_id``, ``frame``,
    ``decoded_action`` and ``gt_listener_frame`` on steps, ``clip_id``, ``frame`` and ``num_frames`` on resets.

    ``max_episode_steps=n`` truncates an episode after n steps (Gymnasium's ``TimeLimit``; what
    ``gymnasium.make_vec(..., max_episode_steps=n)`` passes here). ``autoreset_mode="same_step"`` starts the
    next clip in the step that ends one, as Stable-Baselines3 expects: the last observation is in
    ``infos["final_obs"]`` and the ended clip's id (and what its reward reports) in ``infos["final_info"]``,
    each with its ``_key`` mask; the top-level ``clip_id`` and ``num_frames`` are the new clip's.

    The default ``imitation`` reward is computed for the whole batch; other rewards run per env (an
    ``EpisodeReward`` instance is deep-copied per env). Only
    ``chunk_size=1`` and no rendering. Memory: about ``3 * num_envs * (longest clip + K) * 56 * 4`` bytes.

    ```python
    envs = gymnasium.make_vec("dyadic_env/Listener-v0", num_envs=64, dataset="synthetic:tiny")
    obs, infos = envs.reset(seed=0, options={"clip_index": [0] * 64})  # optional: pin clips per env
    obs, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
    ```

    Arguments are those of :class:`ListenerEnv` plus ``num_envs``.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        dataset: str | os.PathLike | DyadicDataset,
        split: str = "train",
        *,
        num_envs: int = 1,
        reward: Any = "imitation",
        reward_kwargs: dict[str, Any] | None = None,
        chunk_size: int = 1,
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        **env_kwargs: Any,
    ) -> None:
        self.autoreset_mode = check_vector_options(
            num_envs, chunk_size, render_mode, max_episode_steps, autoreset_mode
        )
        self.max_episode_steps = max_episode_steps
        # One ListenerEnv checks the arguments and owns the dataset, tokenizer, spaces and clip choice.
        self.template = ListenerEnv(dataset, split, reward=reward, reward_kwargs=reward_kwargs, **env_kwargs)
        env = self.template
        self.num_envs, self.dataset, self.clips = num_envs, env.dataset, env.clips
        self.tokenizer = env.tokenizer
        self.context_frames, self.render_mode = env.context_frames, None
        self.metadata = {
            **self.metadata,
            "render_fps": env.dataset.fps,
            "autoreset_mode": self.autoreset_mode,
        }
        self.single_observation_space, self.single_action_space = env.observation_space, env.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        # The imitation reward is batched; any other gets one instance per env (rewards keep episode state).
        self._reward_fns: list[EpisodeReward] | None = None
        if type(env.reward_fn) is not ImitationReward:
            self._reward_fns = [
                copy.deepcopy(reward)
                if isinstance(reward, EpisodeReward)
                else make_reward(reward, **(reward_kwargs or {}))
                for _ in range(num_envs)
            ]
        self._allocate()
        self._out: dict[str, np.ndarray] | None = None  # where observations go (shared memory in a worker)

    def _allocate(self) -> None:
        """Per-env rows as in :class:`EpisodeData`, sized for the longest clip of the split."""
        n_envs, k, longest = self.num_envs, self.context_frames, int(self.clips.lengths.max())
        self._rows = np.arange(n_envs)
        self._window = np.arange(k)
        self._speaker = np.zeros((n_envs, k + longest, FRAME_DIM), np.float32)
        feature_dim = self.dataset.feature_dim
        self._features = None if not feature_dim else np.zeros((n_envs, k + longest, feature_dim), np.float32)
        self._mask = np.zeros((n_envs, k + longest), np.int8)
        # One spare row: an env being autoreset places its ignored action one frame past its clip.
        self._listener = np.zeros((n_envs, k + longest + 1, FRAME_DIM), np.float32)
        self._gt = np.zeros((n_envs, longest + 1, FRAME_DIM), np.float32)
        self._words: list[list[str]] = [[""] for _ in range(n_envs)]
        self._t = np.full(n_envs, -1, np.int64)
        self._n = np.zeros(n_envs, np.int64)
        self._clip_ids = np.full(n_envs, None, dtype=object)
        self._autoreset = np.zeros(n_envs, bool)
        self._rngs: list[np.random.Generator | None] = [None] * n_envs
        self._centers = self.template._centers
        self._dims = self.template._dims

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        seeds = self._seeds(seed)
        super().reset(seed=seeds[0])
        for i, s in enumerate(seeds):
            if s is not None or self._rngs[i] is None:
                self._rngs[i] = seeding.np_random(s)[0]
        for i, opts in enumerate(slot_options(options, self.num_envs)):
            self._load(i, self.template._choose_clip(opts, self._rngs[i]))
        self._autoreset[:] = False
        everyone = np.ones(self.num_envs, bool)
        infos = {
            "clip_id": self._clip_ids.copy(), "_clip_id": everyone, "frame": np.zeros(self.num_envs, np.int64),
            "_frame": everyone, "num_frames": self._n.copy(), "_num_frames": everyone.copy(),
        }  # fmt: skip
        return self._observe(), infos

    def step(self, actions: Any) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._t[0] < 0:
            raise ResetNeeded("ListenerVectorEnv.step() called before reset(); call envs.reset() first")
        tokens = check_tokens(actions, (self.num_envs, FRAME_DIM), self.tokenizer.num_bins)
        restart = self._autoreset.copy()
        stepping = ~restart
        t = self._t
        decoded = self._centers[self._dims, tokens]  # (N, 56): a table lookup
        self._listener[self._rows, self.context_frames + t] = decoded
        gt = self._gt[self._rows, t]
        rewards = self._rewards(t, decoded, gt, stepping)
        infos = {
            "clip_id": None, "_clip_id": np.ones(self.num_envs, bool), "frame": t.copy(),
            "_frame": np.ones(self.num_envs, bool), "decoded_action": decoded, "_decoded_action": stepping,
            "gt_listener_frame": gt, "_gt_listener_frame": stepping.copy(),
        }  # fmt: skip
        self._t = t + 1
        terminated = self._t >= self._n
        # The episode's step count is its frame index: one frame placed per step from frame 0.
        truncated = np.zeros(self.num_envs, bool)
        if self.max_episode_steps is not None:
            truncated = ~terminated & (self._t >= self.max_episode_steps)
        finished: dict[int, dict[str, Any]] = {}
        if self._reward_fns is not None:
            for i in np.flatnonzero(terminated & stepping).tolist():
                bonus, finished[i] = self._reward_fns[i].finish()
                rewards[i] += bonus
        if not np.isfinite(rewards).all():
            i = int(np.flatnonzero(~np.isfinite(rewards))[0])
            raise ValueError(
                non_finite_reward_message(rewards[i], self._clip_ids[i], int(t[i]), self.template.reward_fn)
            )
        if restart.any():
            self._restart(restart, rewards, terminated, infos)
            truncated[restart] = False
        done = terminated | truncated
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            return self._same_step_reset(done, rewards, terminated, truncated, infos, finished)
        for i, extra in finished.items():
            infos = self._add_info(infos, extra, i)
        infos["clip_id"] = self._clip_ids.copy()
        self._autoreset = done
        return self._observe(), rewards, terminated, truncated, infos

    def _same_step_reset(
        self, done: np.ndarray, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
        infos: dict[str, Any], finished: dict[int, dict[str, Any]],
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:  # fmt: skip
        """Same-step autoreset: record the ended episodes' last observations, start new clips, observe those."""
        last = self._observe({})  # fresh arrays, not the (shared) output buffers
        final_obs: dict[str, Any] = {}
        for key, value in last.items():
            if key == "words":
                value = np.array([w if d else None for w, d in zip(value, done.tolist())], dtype=object)
            else:
                value[~done] = 0
            final_obs[key], final_obs[f"_{key}"] = value, done.copy()
        final_info: dict[str, Any] = {
            "clip_id": np.array(
                [c if d else None for c, d in zip(self._clip_ids, done.tolist())], dtype=object
            ),
            "_clip_id": done.copy(),
        }
        for i, extra in finished.items():
            final_info = self._add_info(final_info, extra, i)
        for i in np.flatnonzero(done).tolist():
            self._load(i, self.template._choose_clip({}, self._rngs[i]))
        self._autoreset[:] = False
        infos.update(
            final_obs=final_obs, _final_obs=done.copy(), final_info=final_info, _final_info=done.copy(),
            num_frames=np.where(done, self._n, 0), _num_frames=done.copy(), clip_id=self._clip_ids.copy(),
        )  # fmt: skip
        return self._observe(), rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        self.template.close()

    # ------------------------------------------------------------------ internals
    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None or isinstance(seed, (int, np.integer)):
            return [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"reset: expected one seed per env ({self.num_envs}), found {len(seed)}")
        return list(seed)

    def _load(self, i: int, clip_index: int) -> None:
        """Start env ``i`` on clip ``clip_index``: copy the clip's laid-out rows into the env's rows."""
        clip = self.clips[clip_index]
        k = self.context_frames
        data = episode_data(clip, k, self.template.words_window_s, self.template.max_words_chars)
        rows, n = k + data.num_frames, data.num_frames
        self._speaker[i, :rows] = data.speaker
        if self._features is not None and data.features is not None:
            self._features[i, :rows] = data.features
        self._mask[i, :rows] = data.mask
        self._listener[i, :k] = 0.0  # rows past k are written before an observation reads them
        self._gt[i, :n] = data.gt
        self._words[i], self._t[i], self._n[i], self._clip_ids[i] = data.words, 0, n, clip.clip_id
        if self._reward_fns is not None:
            self._reward_fns[i].reset(clip, self.dataset)

    def _rewards(
        self, t: np.ndarray, decoded: np.ndarray, gt: np.ndarray, stepping: np.ndarray
    ) -> np.ndarray:
        if self._reward_fns is None:  # imitation: minus the mean squared error over the 56 values
            diff = decoded - gt
            rewards = -np.einsum("ij,ij->i", diff, diff).astype(np.float64) / FRAME_DIM
            rewards[~stepping] = 0.0
            return rewards
        rewards = np.zeros(self.num_envs, np.float64)
        for i in np.flatnonzero(stepping).tolist():
            rewards[i] = self._reward_fns[i].step(int(t[i]), decoded[i])
        return rewards

    def _restart(self, restart: np.ndarray, rewards: np.ndarray, terminated: np.ndarray, infos: dict) -> None:
        """Next-step autoreset of the ``restart`` envs: a new clip, reward 0, the reset's info for the step's."""
        envs = np.flatnonzero(restart)
        for i in envs.tolist():
            self._load(i, self.template._choose_clip({}, self._rngs[i]))
        rewards[envs], terminated[envs] = 0.0, False
        infos["frame"][envs] = 0
        infos["decoded_action"][envs] = 0.0
        infos["gt_listener_frame"][envs] = 0.0
        infos["num_frames"] = np.where(restart, self._n, 0)
        infos["_num_frames"] = restart
        if restart.all():  # as in Gymnasium's vector infos, a key no env reports is left out
            for key in ("decoded_action", "gt_listener_frame"):
                del infos[key], infos[f"_{key}"]

    def _observe(self, out: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """The observation of every env at its frame t: rows [t, t+K) of its arrays, gathered at once, into
        ``out`` (default: the env's output buffers, if any)."""
        out = (self._out or {}) if out is None else out
        index = self._t[:, None] + self._window  # (N, K)
        obs: dict[str, Any] = {
            "speaker_motion": _gather(self._speaker, index, out.get("speaker_motion")),
            "listener_motion": _gather(self._listener, index, out.get("listener_motion")),
            "mask": _gather(self._mask, index, out.get("mask")),
            "words": tuple(words[t] for words, t in zip(self._words, self._t.tolist())),
        }
        if self._features is not None:
            obs["speaker_features"] = _gather(self._features, index, out.get("speaker_features"))
        step = out.get("step")
        if step is None:
            step = np.empty((self.num_envs, 1), np.int64)
        step[:, 0] = self._t
        obs["step"] = step
        phase = out.get("phase")
        if phase is None:
            phase = np.empty((self.num_envs, 1), np.float32)
        np.divide(self._t, np.maximum(self._n, 1), out=phase[:, 0], casting="unsafe")
        obs["phase"] = phase
        return obs


def _gather(rows: np.ndarray, index: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``rows[i, index[i]]`` for every env i, as one ``take`` on the flattened env axis."""
    per_env = rows.shape[1]
    flat = rows.reshape(-1, *rows.shape[2:])
    return np.take(flat, index + (np.arange(len(rows)) * per_env)[:, None], axis=0, out=out)
