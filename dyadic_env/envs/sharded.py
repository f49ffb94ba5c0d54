"""The sharded listener env: a batched env split over worker processes, for steps heavy enough that more cores help.

:class:`ShardedListenerVectorEnv` splits ``num_envs`` episodes into shards, each a
:class:`~dyadic_env.envs.vector.ListenerVectorEnv` in its own process (spawned; each opens the memory-mapped
dataset itself), exchanging observations, rewards and flags through shared memory and only words and infos
through a pipe, so the inter-process cost is paid once per shard. :func:`make_listener_vector_env`, the
vector entry point of ``dyadic_env/Listener-v0``, builds either.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from dyadic_env.data import DyadicDataset
from dyadic_env.envs.listener import ListenerEnv, check_tokens
from dyadic_env.envs.vector import ListenerVectorEnv, check_vector_options, slot_options
from dyadic_env.expression_basis import FRAME_DIM

# Infos every step or reset may carry, exchanged with workers through shared memory: dtype and shape per env.
SHARED_INFOS: dict[str, tuple[type, tuple[int, ...]]] = {
    "frame": (np.int64, ()), "num_frames": (np.int64, ()),
    "decoded_action": (np.float32, (FRAME_DIM,)), "gt_listener_frame": (np.float32, (FRAME_DIM,)),
}  # fmt: skip


# A spawned worker that finds itself making workers while it imports the user's script exits with this code
# (sysexits' EX_CONFIG), so the parent can say what went wrong instead of "worker died".
UNGUARDED_EXIT_CODE = 78


class WorkerError(RuntimeError):
    """A worker process of a :class:`ShardedListenerVectorEnv` failed or died."""


def unguarded_script_message(workers: object) -> str:
    main = getattr(sys.modules.get("__main__"), "__file__", None) or "your script"
    return (
        f"{main} makes a listener vector env with workers={workers} at its top level, without an "
        '`if __name__ == "__main__":` guard. Its worker processes are spawned: each one imports the script '
        "again, which would start workers of its own. Put the code that makes and steps the env under "
        '`if __name__ == "__main__":` (see Python\'s multiprocessing guidelines), or use workers=1.'
    )


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
        if getattr(mp.current_process(), "_inheriting", False):
            # We are a spawned worker importing an unguarded script: stop before making workers; the parent
            # recognises the exit code and explains.
            raise SystemExit(UNGUARDED_EXIT_CODE)
        vector_options: dict[str, Any] = {
            key: env_kwargs.pop(key) for key in ("max_episode_steps", "autoreset_mode") if key in env_kwargs
        }
        self.autoreset_mode = check_vector_options(
            num_envs, env_kwargs.get("chunk_size", 1), env_kwargs.get("render_mode"), **vector_options
        )
        self.max_episode_steps = vector_options.get("max_episode_steps")
        if (
            isinstance(workers, bool)
            or not isinstance(workers, (int, np.integer))
            or not 1 <= workers <= num_envs
        ):
            raise ValueError(f"workers: expected an integer in [1, num_envs={num_envs}], found {workers!r}")
        template = ListenerEnv(dataset, split, **env_kwargs)  # checks the arguments here, not in a worker
        self.num_envs, self.tokenizer, self.dataset = num_envs, template.tokenizer, template.dataset
        self.metadata = {
            **self.metadata,
            "render_fps": template.dataset.fps,
            "autoreset_mode": self.autoreset_mode,
        }
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        sizes = [num_envs // workers + (w < num_envs % workers) for w in range(workers)]
        self.shards = [(sum(sizes[:w]), sum(sizes[: w + 1])) for w in range(workers)]
        self._sizes = sizes
        worker_kwargs: dict[str, Any] = {
            **env_kwargs,
            **vector_options,
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
                if self._processes[w].exitcode == UNGUARDED_EXIT_CODE:
                    raise WorkerError(unguarded_script_message(len(self.shards))) from None
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
