"""Batched listener envs: many episodes per step, for a cheap env whose per-env overheads would dominate.

A listener step costs about 9 us, while Gymnasium's SyncVectorEnv adds its per-env Python loop and per-key
info merging, and AsyncVectorEnv an inter-process round trip per env per step: both are slower than one env.
Here the per-step work is batched numpy over N episodes, and the inter-process cost is paid once per shard:

- :class:`ListenerVectorEnv` steps N episodes in one process;
- :class:`ShardedListenerVectorEnv` splits them into shards, each a ``ListenerVectorEnv`` in its own
  process (spawned; each opens the memory-mapped dataset itself), exchanging observations, rewards and
  flags through shared memory and only words and infos through a pipe.

Both are what ``gymnasium.make_vec("dyadic_env/Listener-v0", num_envs=N)`` builds (``workers=W`` for the
sharded one), with Gymnasium 1.x next-step autoreset and vector-format infos.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import multiprocessing as mp
import os
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dyadic_env.data import DyadicDataset
from dyadic_env.envs.listener import ListenerEnv, check_tokens, episode_data
from dyadic_env.expression_basis import FRAME_DIM
from dyadic_env.rewards import EpisodeReward, ImitationReward, make_reward

SyncHint = "gymnasium.make_vec(..., vectorization_mode='sync')"
# Infos every step or reset may carry, exchanged with workers through shared memory: dtype and shape per env.
SHARED_INFOS: dict[str, tuple[type, tuple[int, ...]]] = {
    "frame": (np.int64, ()), "num_frames": (np.int64, ()),
    "decoded_action": (np.float32, (FRAME_DIM,)), "gt_listener_frame": (np.float32, (FRAME_DIM,)),
}  # fmt: skip


def check_vector_options(num_envs: Any, chunk_size: Any, render_mode: Any) -> None:
    """Reject what the batched envs do not support, saying what to use instead."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs: expected a positive integer, found {num_envs!r}")
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
        **env_kwargs: Any,
    ) -> None:
        check_vector_options(num_envs, chunk_size, render_mode)
        # One ListenerEnv checks the arguments and owns the dataset, tokenizer, spaces and clip choice.
        self.template = ListenerEnv(dataset, split, reward=reward, reward_kwargs=reward_kwargs, **env_kwargs)
        env = self.template
        self.num_envs, self.dataset, self.clips = num_envs, env.dataset, env.clips
        self.tokenizer = env.tokenizer
        self.context_frames, self.render_mode = env.context_frames, None
        self.metadata = {**self.metadata, "render_fps": env.dataset.fps}
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
        if self._reward_fns is not None:
            for i in np.flatnonzero(terminated & stepping).tolist():
                bonus, extra = self._reward_fns[i].finish()
                rewards[i] += bonus
                infos = self._add_info(infos, extra, i)
        if restart.any():
            self._restart(restart, rewards, terminated, infos)
        infos["clip_id"] = self._clip_ids.copy()
        self._autoreset = terminated
        return self._observe(), rewards, terminated.copy(), np.zeros(self.num_envs, bool), infos

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

    def _observe(self) -> dict[str, Any]:
        """The observation of every env at its frame t: rows [t, t+K) of its arrays, gathered at once."""
        out = self._out or {}
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
        return obs


def _gather(rows: np.ndarray, index: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``rows[i, index[i]]`` for every env i, as one ``take`` on the flattened env axis."""
    per_env = rows.shape[1]
    flat = rows.reshape(-1, *rows.shape[2:])
    return np.take(flat, index + (np.arange(len(rows)) * per_env)[:, None], axis=0, out=out)


# ---------------------------------------------------------------------- worker processes
class WorkerError(RuntimeError):
    """A worker process of a :class:`ShardedListenerVectorEnv` failed or died."""


class ShardedListenerVectorEnv(VectorEnv):
    """``num_envs`` listener episodes split into ``workers`` shards, each a :class:`ListenerVectorEnv` in
    its own process, for steps heavy enough (e.g. the ``oracle`` reward) that more cores help.

    Results equal a :class:`ListenerVectorEnv` of ``num_envs`` (env ``i`` is seeded ``seed + i`` whatever
    its shard). Workers are started with ``context`` (``"spawn"`` by default) and open the dataset from its
    path; the env arguments must pickle (a reward function must be importable, not a lambda). A worker's
    exception is raised here as :class:`WorkerError` naming the worker. Call ``close()`` to stop them.
    """

    metadata = ListenerVectorEnv.metadata

    def __init__(
        self,
        dataset: str | os.PathLike | DyadicDataset,
        split: str = "train",
        *,
        num_envs: int = 2,
        workers: int = 2,
        context: str = "spawn",
        **env_kwargs: Any,
    ) -> None:
        self._processes: list[Any] = []
        self._conns: list[Connection] = []
        self.closed = True  # until the workers run: close() then has nothing to stop
        check_vector_options(num_envs, env_kwargs.get("chunk_size", 1), env_kwargs.get("render_mode"))
        if (
            isinstance(workers, bool)
            or not isinstance(workers, (int, np.integer))
            or not 1 <= workers <= num_envs
        ):
            raise ValueError(f"workers: expected an integer in [1, num_envs={num_envs}], found {workers!r}")
        template = ListenerEnv(dataset, split, **env_kwargs)  # checks the arguments here, not in a worker
        self.num_envs, self.tokenizer = num_envs, template.tokenizer
        self.metadata = {**self.metadata, "render_fps": template.dataset.fps}
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        sizes = [num_envs // workers + (w < num_envs % workers) for w in range(workers)]
        self.shards = [(sum(sizes[:w]), sum(sizes[: w + 1])) for w in range(workers)]
        self._sizes = sizes
        worker_kwargs = {
            **env_kwargs,
            "dataset": str(template.dataset.path),
            "split": split,
            "tokenizer": template.tokenizer,
        }
        template.close()
        self._ctx = mp.get_context(context)
        self._shared, self._arrays = self._allocate_shared()
        self._started = False
        self._start(worker_kwargs)

    def _allocate_shared(self) -> tuple[dict[str, tuple[Any, str, tuple[int, ...]]], dict[str, np.ndarray]]:
        """Shared buffers of the numeric observations, the actions, rewards and flags (words go by pipe)."""
        specs: dict[str, tuple[Any, tuple[int, ...]]] = {
            key: (space.dtype, space.shape)
            for key, space in self.single_observation_space.items()  # type: ignore[attr-defined]
            if isinstance(space, (spaces.Box, spaces.MultiBinary))
        }
        specs.update({
            "_actions": (np.dtype(np.int64), (FRAME_DIM,)), "_rewards": (np.dtype(np.float64), ()),
            "_terminated": (np.dtype(bool), ()), "_truncated": (np.dtype(bool), ()),
        })  # fmt: skip
        for key, (info_dtype, info_shape) in SHARED_INFOS.items():
            specs[f"info.{key}"], specs[f"info._{key}"] = (info_dtype, info_shape), (bool, ())
        shared, arrays = {}, {}
        for key, (dtype, shape) in specs.items():
            full = (self.num_envs, *shape)
            raw = self._ctx.RawArray(ctypes.c_uint8, int(np.prod(full)) * np.dtype(dtype).itemsize)
            shared[key] = (raw, np.dtype(dtype).str, full)
            arrays[key] = _view(raw, np.dtype(dtype).str, full)
        return shared, arrays

    def _start(self, worker_kwargs: dict[str, Any]) -> None:
        self.closed = False
        try:
            for w, shard in enumerate(self.shards):
                parent, child = self._ctx.Pipe()
                process = self._ctx.Process(  # type: ignore[attr-defined]
                    target=_worker, args=(w, child, shard, worker_kwargs, self._shared),
                    name=f"listener-vector-worker-{w}", daemon=True,
                )  # fmt: skip
                process.start()
                child.close()
                self._processes.append(process)
                self._conns.append(parent)
        except Exception as e:
            self.close()
            raise WorkerError(
                f"could not start listener vector workers ({type(e).__name__}: {e}); the env arguments must "
                "pickle: pass a reward name or an importable function, not a lambda"
            ) from e
        try:
            self._receive_all("start")
        except WorkerError:
            self.close()
            raise

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"reset: ShardedListenerVectorEnv takes an integer seed or None, found {seed!r}")
        super().reset(seed=seed)
        per_env = slot_options(options, self.num_envs)
        for conn, (a, b) in zip(self._conns, self.shards):
            shard_options = {
                key: [opts.get(key) for opts in per_env[a:b]] for key in ("clip_id", "clip_index")
            }
            _try_send(conn, ("reset", (None if seed is None else int(seed) + a, shard_options)))
        replies = self._receive_all("reset")
        self._started = True
        return self._observation(replies), self._infos(replies)

    def step(self, actions: Any) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise ResetNeeded(
                "ShardedListenerVectorEnv.step() called before reset(); call envs.reset() first"
            )
        self._arrays["_actions"][:] = check_tokens(
            actions, (self.num_envs, FRAME_DIM), self.tokenizer.num_bins
        )
        for conn in self._conns:
            _try_send(conn, ("step", None))
        replies = self._receive_all("step")
        a = self._arrays
        return (
            self._observation(replies), a["_rewards"].copy(), a["_terminated"].copy(), a["_truncated"].copy(),
            self._infos(replies),
        )  # fmt: skip

    def close_extras(self, **kwargs: Any) -> None:
        for conn in self._conns:
            _try_send(conn, ("close", None))  # a dead worker needs no message
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for conn in self._conns:
            conn.close()

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            self.close()

    # ------------------------------------------------------------------ internals
    def _observation(self, replies: list[tuple]) -> dict[str, Any]:
        obs: dict[str, Any] = {}
        for key in self.single_observation_space:  # type: ignore[attr-defined]
            obs[key] = (
                tuple(w for reply in replies for w in reply[0])
                if key == "words"
                else self._arrays[key].copy()
            )
        return obs

    def _infos(self, replies: list[tuple]) -> dict[str, Any]:
        """Vector infos from the shared arrays the workers filled and the few entries they sent."""
        infos: dict[str, Any] = {
            "clip_id": np.array([c for reply in replies for c in reply[1]], dtype=object),
            "_clip_id": np.ones(self.num_envs, bool),
        }
        present = set().union(*(reply[2] for reply in replies))
        for key in SHARED_INFOS:
            if key in present:
                infos[key], infos[f"_{key}"] = (
                    self._arrays[f"info.{key}"].copy(),
                    self._arrays[f"info._{key}"].copy(),
                )
        extras = [reply[3] for reply in replies]
        if any(extras):
            infos.update(merge_infos(extras, self._sizes))
        return infos

    def _receive_all(self, what: str) -> list[Any]:
        """Every worker's reply to ``what``; drains all before raising the first failure, naming its worker."""
        replies, failures = [], []
        for w, conn in enumerate(self._conns):
            try:
                status, payload = conn.recv()
            except (EOFError, OSError):
                self._processes[w].join(timeout=1)
                failures.append(
                    f"worker {w} (envs {self._describe(w)}) died during {what} "
                    f"(exit code {self._processes[w].exitcode})"
                )
                continue
            if status == "error":
                name, message, trace = payload
                failures.append(
                    f"worker {w} (envs {self._describe(w)}) raised {name} during {what}: {message}\n{trace}"
                )
            replies.append(payload)
        if failures:
            raise WorkerError("; ".join(failures))
        return replies

    def _describe(self, w: int) -> str:
        a, b = self.shards[w]
        return f"{a}..{b - 1}"


def _view(raw: Any, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.dtype(dtype), count=int(np.prod(shape))).reshape(shape)


def _worker(
    index: int, conn: Connection, shard: tuple[int, int], env_kwargs: dict[str, Any], shared: dict[str, Any]
) -> None:
    """A shard's loop: step a ListenerVectorEnv of the shard's envs, writing into its rows of shared memory."""
    a, b = shard
    arrays = {key: _view(*spec)[a:b] for key, spec in shared.items()}
    envs = None
    try:
        envs = ListenerVectorEnv(num_envs=b - a, **env_kwargs)
        envs._out = {key: arrays[key] for key in envs.single_observation_space if key in arrays}  # type: ignore[attr-defined]
        conn.send(("ok", None))
        while True:
            command, payload = conn.recv()
            if command == "close":
                break
            try:
                conn.send(("ok", _serve(envs, command, payload, arrays)))
            except Exception as e:
                conn.send(("error", _describe_exception(e)))
    except (EOFError, OSError, KeyboardInterrupt):
        pass  # the parent went away or is stopping us: nothing to report to
    except Exception as e:
        _try_send(conn, ("error", _describe_exception(e)))
    finally:
        if envs is not None:
            envs.close()
        conn.close()


def _describe_exception(e: BaseException) -> tuple[str, str, str]:
    return type(e).__name__, str(e), traceback.format_exc()


def _try_send(conn: Connection, message: tuple[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.send(message)


def _serve(envs: ListenerVectorEnv, command: str, payload: Any, arrays: dict[str, np.ndarray]) -> tuple:
    if command == "reset":
        seed, options = payload
        obs, infos = envs.reset(seed=seed, options=options)
    elif command == "step":
        obs, rewards, terminated, truncated, infos = envs.step(arrays["_actions"])
        arrays["_rewards"][:], arrays["_terminated"][:], arrays["_truncated"][:] = (
            rewards,
            terminated,
            truncated,
        )
    else:
        raise ValueError(f"unknown worker command {command!r}")
    return (obs["words"], *_share_infos(infos, arrays))


def _share_infos(infos: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[list, tuple, dict]:
    """Write the fixed info arrays into shared memory (pickling small arrays costs more than their size
    suggests); return the clip ids, which of those keys are present, and any other entries."""
    for key in SHARED_INFOS:
        if key in infos:
            arrays[f"info.{key}"][:], arrays[f"info._{key}"][:] = infos[key], infos[f"_{key}"]
        else:
            arrays[f"info._{key}"][:] = False
            arrays[f"info.{key}"][:] = 0
    present = tuple(key for key in SHARED_INFOS if key in infos)
    skip = {"clip_id", "_clip_id", *SHARED_INFOS, *(f"_{key}" for key in SHARED_INFOS)}
    return infos["clip_id"].tolist(), present, {k: v for k, v in infos.items() if k not in skip}


def merge_infos(parts: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """Concatenate shards' vector-format infos (``sizes`` envs each); where a shard lacks a key, its rows
    are zeros (so its ``_key`` mask is False)."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(key for part in parts for key in part):
        sample = next(part[key] for part in parts if key in part)
        if isinstance(sample, dict):
            merged[key] = merge_infos([part.get(key, {}) for part in parts], sizes)
            continue
        fill = None if sample.dtype == object else 0
        merged[key] = np.concatenate([
            part[key] if key in part else np.full((n, *sample.shape[1:]), fill, sample.dtype)
            for part, n in zip(parts, sizes)
        ])  # fmt: skip
    return merged


def make_listener_vector_env(
    dataset: str | os.PathLike | DyadicDataset,
    split: str = "train",
    *,
    num_envs: int = 1,
    workers: int = 1,
    **kwargs: Any,
) -> VectorEnv:
    """The ``vector_entry_point`` of ``dyadic_env/Listener-v0``: in-process with ``workers=1``, else sharded."""
    if workers == 1:
        return ListenerVectorEnv(dataset, split, num_envs=num_envs, **kwargs)
    return ShardedListenerVectorEnv(dataset, split, num_envs=num_envs, workers=workers, **kwargs)
