"""Stable-Baselines3 on the batched listener env, without a per-env Python loop.

SB3 steps a ``VecEnv`` whose finished envs restart within the step (their last observation in
``info["terminal_observation"]``), with numeric observations only. :class:`ListenerSB3VecEnv` is that adapter
over :class:`~dyadic_env.envs.vector.ListenerVectorEnv` (or its sharded form) in ``same_step`` autoreset mode:

- ``words`` (text) becomes numbers: a bag of words over the dataset's train vocabulary (default), the ids of
  the last words, or nothing; or any encoder with ``space`` and ``encode(text)``;
- ``step`` is left out by default (``phase`` in [0, 1] tells the policy where it is; a raw frame index in
  the hundreds would swamp an MLP's other inputs);
- ``actions="continuous"`` offers a ``Box(-1, 1, (56,))`` spread over each dimension's tokenizer range (what
  SB3's Gaussian policies want), instead of the ``MultiDiscrete`` tokens.

The spaces depend on the dataset and these settings, never on the split, so a policy trained on ``train``
loads on ``test``:

```python
from stable_baselines3 import PPO
from dyadic_env.envs.sb3 import make_sb3_env

model = PPO("MultiInputPolicy", make_sb3_env("synthetic:tiny", "train", num_envs=16), n_steps=64)
model.learn(4096)
model.save("ppo.zip")
model = PPO.load("ppo.zip", env=make_sb3_env("synthetic:tiny", "test", num_envs=16))
```

Importing this module imports Stable-Baselines3 (``pip install dyadic-listener[align]``);
``import dyadic_env`` does not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices

from dyadic_env.data import DyadicDataset
from dyadic_env.envs.words import BagOfWords, WordIds, build_vocabulary

WORDS_MODES = ("bag", "ids", "drop")
ACTION_MODES = ("tokens", "continuous")


class ListenerSB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over a batched listener env made with ``autoreset_mode="same_step"``.

    Args:
        venv: the batched env (``gymnasium.make_vec("dyadic_env/Listener-v0", num_envs=N,
            autoreset_mode="same_step", ...)``); :func:`make_sb3_env` makes one.
        words: ``"bag"`` (multi-hot over the train vocabulary), ``"ids"`` (the last ``max_words`` word ids),
            ``"drop"``, or an encoder object with ``space`` and ``encode(text) -> array``.
        drop_keys: observation keys left out (default ``("step",)``).
        actions: ``"tokens"`` (the env's ``MultiDiscrete``) or ``"continuous"`` (``Box(-1, 1, (56,))``).
        vocabulary, max_words: for ``words="bag"``/``"ids"``; the vocabulary defaults to the words of the
            dataset's ``train`` split (the same whichever split is stepped).

    Infos: at the end of an episode, ``terminal_observation``, ``TimeLimit.truncated``, ``clip_id`` and what
    the reward reports (e.g. ``oracle_scores``).
    """

    def __init__(
        self,
        venv: VectorEnv,
        *,
        words: str | Any = "bag",
        drop_keys: Sequence[str] = ("step",),
        actions: str = "tokens",
        vocabulary: Sequence[str] | None = None,
        max_words: int = 16,
    ) -> None:
        if venv.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise ValueError(
                "venv: SB3 restarts finished envs within the step; make the listener env with "
                "autoreset_mode='same_step' (make_sb3_env does), found "
                f"{venv.metadata.get('autoreset_mode')}"
            )
        if actions not in ACTION_MODES:
            raise ValueError(f"actions: expected one of {ACTION_MODES}, found {actions!r}")
        self.venv, self.actions = venv, actions
        single: spaces.Dict = venv.single_observation_space  # type: ignore[assignment]
        unknown = set(drop_keys) - set(single.spaces)
        if unknown:
            raise ValueError(
                f"drop_keys: {sorted(unknown)} are not observation keys; keys: {list(single.spaces)}"
            )
        self.encoder = _words_encoder(words, venv, vocabulary, max_words)
        self.keys = [k for k in single.spaces if k not in drop_keys and k != "words"]
        obs_spaces = {k: single.spaces[k] for k in self.keys}
        if self.encoder is not None and "words" not in drop_keys:
            obs_spaces["words"] = self.encoder.space
        tokens_space: spaces.MultiDiscrete = venv.single_action_space  # type: ignore[assignment]
        self.tokenizer = venv.tokenizer  # type: ignore[attr-defined]
        action_space: spaces.Space = (
            tokens_space if actions == "tokens" else spaces.Box(-1.0, 1.0, tokens_space.shape, np.float32)
        )
        super().__init__(venv.num_envs, spaces.Dict(obs_spaces), action_space)
        self._actions: np.ndarray | None = None

    @property
    def data_card(self) -> dict[str, Any]:
        """What a policy trained here must run on (:mod:`dyadic_env.envs.compatibility`); store it with a model
        (``model.data_card = env.data_card; model.save(path, include=["data_card"])``) so evaluation checks it."""
        from dyadic_env.envs.compatibility import data_card

        return data_card(self.venv.dataset, self.tokenizer)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ SB3 VecEnv API
    def reset(self) -> dict[str, np.ndarray]:
        seed = self._seeds[0]  # env i is seeded seed + i, as SB3's seed() sets them
        obs, infos = self.venv.reset(seed=seed, options=_slot_options(self._options))
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{"clip_id": infos["clip_id"][i]} for i in range(self.num_envs)]
        return self._convert(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self.tokens(actions)

    def tokens(self, actions: np.ndarray) -> np.ndarray:
        """The env's tokens ``(N, 56)`` of this adapter's actions (continuous ones spread over the bins)."""
        actions = np.asarray(actions)
        if self.actions == "continuous":
            low, high = self.tokenizer.low, self.tokenizer.high
            values = low + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (high - low)
            actions = self.tokenizer.encode(values)
        return actions.astype(np.int64, copy=False)

    def encode_observation(self, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        """One env's raw observation as this adapter's, batched as one (for a trained policy's ``predict``).

        An observation of an env with more context frames than this adapter's is cut to its last ones, so a
        policy can be evaluated in an env shared with agents that look further back.
        """
        batched: dict[str, Any] = {}
        for key, value in observation.items():
            space = self.observation_space.spaces.get(key)  # type: ignore[attr-defined]
            value = np.asarray(value) if key != "words" else value
            if key != "words" and space is not None and space.shape and value.shape[0] > space.shape[0]:
                value = value[-space.shape[0] :]
            batched[key] = (value,) if key == "words" else value[None]
        return self._convert(batched)

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = terminated | truncated
        out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final = self._convert({k: v for k, v in infos["final_obs"].items() if not k.startswith("_")})
            for i in np.flatnonzero(dones).tolist():
                out[i] = {
                    "terminal_observation": {key: value[i] for key, value in final.items()},
                    "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                    **env_info(infos.get("final_info", {}), i),
                }
        return self._convert(obs), rewards.astype(np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list[Any]:
        result = getattr(self.venv, method_name)(*args, **kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # one batched env: no per-env Gymnasium wrappers

    # ------------------------------------------------------------------ internals
    def _convert(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {key: obs[key] for key in self.keys}
        if "words" in self.observation_space.spaces:  # type: ignore[attr-defined]
            assert self.encoder is not None
            out["words"] = np.stack([self.encoder.encode(w or "") for w in obs["words"]])
        return out


class SB3Agent:
    """A trained SB3 model as an agent (``reset``, ``act``) of the raw listener env, e.g. for
    :func:`experiments.evaluation.evaluate_agents`: observations encoded and actions decoded as ``adapter`` does.

    ``data_card`` is the model's (see :mod:`dyadic_env.envs.compatibility`), when it was saved with one.
    """

    def __init__(self, model: Any, adapter: ListenerSB3VecEnv, *, deterministic: bool = True) -> None:
        self.model, self.adapter, self.deterministic = model, adapter, deterministic
        self.tokenizer = adapter.tokenizer
        self.data_card = getattr(model, "data_card", None)

    def reset(self, *, seed: int | None = None) -> None:
        if seed is not None:
            self.model.set_random_seed(seed)

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        action, _ = self.model.predict(
            self.adapter.encode_observation(observation), deterministic=self.deterministic
        )
        return self.adapter.tokens(action)[0]


def env_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Env ``i``'s entries of Gymnasium vector-format ``infos`` (arrays with ``_key`` masks, nested dicts)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if isinstance(value, dict):
            if mask is None or mask[i]:
                out[key] = env_info(value, i)
        elif mask is None or mask[i]:
            item = value[i]
            out[key] = item.item() if isinstance(item, np.generic) else item
    return out


def _slot_options(options: list[dict[str, Any]]) -> dict[str, list[Any]] | None:
    """SB3's per-env option dicts as the batched env's ``{key: [one value per env]}``."""
    keys = {key for opts in options for key in opts}
    return {key: [opts.get(key) for opts in options] for key in keys} or None


def _words_encoder(
    words: str | Any, venv: VectorEnv, vocabulary: Sequence[str] | None, max_words: int
) -> Any:
    if not isinstance(words, str):
        if not hasattr(words, "space") or not hasattr(words, "encode"):
            raise TypeError(f"words: expected one of {WORDS_MODES} or an encoder with space and encode(text)")
        return words
    if words not in WORDS_MODES:
        raise ValueError(f"words: expected one of {WORDS_MODES} or an encoder object, found {words!r}")
    if words == "drop":
        return None
    if vocabulary is None:
        dataset: DyadicDataset = venv.dataset  # type: ignore[attr-defined]
        vocabulary = build_vocabulary(dataset, "train" if "train" in dataset.splits else dataset.splits[0])
    return BagOfWords(vocabulary) if words == "bag" else WordIds(vocabulary, max_words)


def make_sb3_env(
    dataset: str | os.PathLike | DyadicDataset,
    split: str = "train",
    *,
    num_envs: int = 8,
    workers: int = 1,
    max_episode_steps: int | None = None,
    words: str | Any = "bag",
    drop_keys: Sequence[str] = ("step",),
    actions: str = "tokens",
    vocabulary: Sequence[str] | None = None,
    **env_kwargs: Any,
) -> ListenerSB3VecEnv:
    """A :class:`ListenerSB3VecEnv` over a new batched listener env of ``num_envs`` episodes (``workers``
    processes); ``env_kwargs`` go to the env (``reward``, ``context_frames``, ...)."""
    from dyadic_env.envs.sharded import make_listener_vector_env

    venv = make_listener_vector_env(
        dataset, split, num_envs=num_envs, workers=workers, max_episode_steps=max_episode_steps,
        autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs,
    )  # fmt: skip
    try:
        return ListenerSB3VecEnv(
            venv, words=words, drop_keys=drop_keys, actions=actions, vocabulary=vocabulary
        )
    except Exception:
        venv.close()
        raise
