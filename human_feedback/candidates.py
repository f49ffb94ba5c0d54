"""Candidate groups (paper section III-D): sampled closed-loop rollouts plus the ground truth, rendered.

For each chosen speaker clip, every policy plays ``samples`` closed-loop episodes in the listener
environment with different seeds (a sampling policy such as the VLA at temperature > 0 gives different
answers); the ground-truth listener joins them, and in a share of groups an obviously broken listener
(jittering or frozen) is added as an attention check. Every candidate is rendered to a speaker|listener
MP4 with the identity-neutral head and stored with its tokens. ``append=True`` adds groups of clips the
campaign does not have yet to an existing campaign.

Blinding starts here: the ground truth is quantized through the same action tokenizer as the policies'
outputs and every candidate is rendered by :func:`human_feedback.blinding.render_group`; sources and
policy names stay in the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from human_feedback import service
from human_feedback.blinding import captions_for, render_group
from human_feedback.store import Campaign, ClipRecord, Store, new_public_id

__all__ = [
    "BROKEN_KINDS", "GROUND_TRUTH", "CollectConfig", "CollectReport", "PolicySpec", "broken_tokens", "captions_for",
    "choose_clips", "collect", "default_media_dir", "load_policy",
]  # fmt: skip

BROKEN_KINDS = ("jitter", "frozen")
GROUND_TRUTH = "ground_truth"


@dataclass(frozen=True)
class PolicySpec:
    """A policy to sample from: a display name and a checkpoint directory or a baseline agent name."""

    name: str
    source: str

    @classmethod
    def parse(cls, text: str) -> PolicySpec:
        """``NAME=CKPT_OR_AGENT`` or just ``CKPT_OR_AGENT`` (named after the directory or agent)."""
        name, sep, source = text.partition("=")
        if not sep:
            source = text
            name = Path(text).name if Path(text).exists() else text
        if not name.strip() or not source.strip():
            raise ValueError(f"policy {text!r}: expected NAME=CHECKPOINT, NAME=AGENT, CHECKPOINT or AGENT")
        return cls(name.strip(), source.strip())


@dataclass
class CollectConfig:
    """What ``dyadic feedback collect`` and ``dyadic feedback study`` build.

    Attributes:
        policies: the policies whose rollouts are rated.
        dataset: the dataset (directory or ``synthetic:PRESET``).
        split: the split whose clips are used.
        clips: how many clips (groups); drawn without replacement with ``seed``.
        samples: rollouts per policy and clip (the paper's N = 4).
        ground_truth: add the dataset's listener to every group.
        broken_fraction: share of groups that get an obviously broken candidate (attention check).
        render: render videos (off: store tokens only, e.g. for simulated annotators).
        video_size: pixels of one face panel (the video is twice as wide).
        temperature: sampling temperature for checkpoint policies; None: each checkpoint's own
            ``decode_temperature`` (a study's default: people rate a policy as it is deployed).
        seed: seeds clip choice, rollouts, broken candidates and the annotators' shuffles.
        clip_ids: rate exactly these clips instead of drawing ``clips`` of them.
    """

    policies: list[PolicySpec]
    dataset: str
    split: str = "test"
    clips: int = 8
    samples: int = 4
    ground_truth: bool = True
    broken_fraction: float = 0.25
    render: bool = True
    video_size: int = 256
    temperature: float | None = 1.0
    seed: int = 0
    clip_ids: list[str] | None = None
    backend: str = "osmesa"

    def __post_init__(self) -> None:
        if not self.policies:
            raise ValueError("give at least one policy (--policy CKPT or an agent name such as nn)")
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names) or GROUND_TRUTH in names:
            raise ValueError(f"policy names must be distinct and not {GROUND_TRUTH!r}; found {names}")
        if self.clips < 1 and not self.clip_ids:
            raise ValueError(f"clips must be at least 1, found {self.clips}")
        if self.samples < 1:
            raise ValueError(f"candidates per policy must be at least 1, found {self.samples}")
        if not 0.0 <= self.broken_fraction <= 1.0:
            raise ValueError(f"broken_fraction must be in [0, 1], found {self.broken_fraction}")
        if self.video_size < 16 or self.video_size % 2:
            raise ValueError(f"video_size must be an even number >= 16, found {self.video_size}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be positive, found {self.temperature}")


@dataclass
class CollectReport:
    campaign: str
    groups: int = 0
    candidates: int = 0
    videos: int = 0
    broken: int = 0
    seconds_rollout: float = 0.0
    seconds_render: float = 0.0
    clip_ids: list[str] = field(default_factory=list)


def load_policy(spec: PolicySpec, dataset: Any, *, seed: int, temperature: float | None) -> Any:
    """An Agent for a policy spec: a checkpoint directory (VLA, LM-listener, MMLHG), else a registered baseline."""
    if Path(spec.source).is_dir():
        from agents.checkpoints import load_checkpoint_agent

        # Candidates are samples of the policy (DESIGN.md), whatever decoding the checkpoint deploys with.
        return load_checkpoint_agent(spec.source, temperature=temperature, seed=seed, mode="sample")
    from agents.baselines import agent_names, make_agent

    if spec.source not in agent_names():
        raise ValueError(
            f"policy {spec.name}: {spec.source!r} is neither a checkpoint directory nor an agent "
            f"({', '.join(agent_names())})"
        )
    return make_agent(spec.source, dataset, seed)


def choose_clips(clip_ids: Sequence[str], count: int, seed: int) -> list[str]:
    """``count`` clip ids drawn without replacement (all of them, in order, when there are fewer)."""
    if count >= len(clip_ids):
        return list(clip_ids)
    picked = np.random.default_rng([seed, 1]).choice(len(clip_ids), size=count, replace=False)
    return [clip_ids[i] for i in sorted(picked)]


def broken_tokens(tokens: np.ndarray, kind: str, num_bins: int, rng: np.random.Generator) -> np.ndarray:
    """An obviously broken listener made from a real one: ``jitter`` (large random jumps every frame) or
    ``frozen`` (one frame held for the whole clip)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if kind == "jitter":
        jumps = rng.integers(-num_bins // 3, num_bins // 3 + 1, size=tokens.shape)
        return np.clip(tokens + jumps, 0, num_bins - 1)
    if kind == "frozen":
        return np.repeat(tokens[len(tokens) // 2][None], len(tokens), axis=0)
    raise ValueError(f"broken kind must be one of {BROKEN_KINDS}, found {kind!r}")


def collect(
    store: Store,
    campaign: str,
    config: CollectConfig,
    *,
    kind: str = "preference",
    ratings_per_group: int = 3,
    repeat_every: int = 8,
    media_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    append: bool = False,
    settings: dict[str, Any] | None = None,
) -> CollectReport:
    """Create ``campaign`` (or, with ``append``, extend it) and fill it with candidate groups.

    Each group is written in one transaction after its videos are rendered, so an interrupted collection
    leaves only complete groups (and perhaps unreferenced videos). ``settings``: campaign config such as
    ``require_watch_time``. Appending draws clips the campaign lacks; the other settings stay its own.
    """
    import gymnasium as gym

    import dyadic_env  # noqa: F401  (registers the environment)
    from dyadic_env.data import load_dataset

    say = progress or (lambda _msg: None)
    dataset = load_dataset(config.dataset)
    if config.split not in dataset.splits:
        raise ValueError(
            f"dataset {config.dataset} has no split {config.split!r}; splits: {list(dataset.splits)}"
        )
    env = gym.make("dyadic_env/Listener-v0", dataset=dataset, split=config.split)
    tokenizer = env.unwrapped.tokenizer  # type: ignore[attr-defined]
    if append:
        media, taken = _extend_campaign(store, campaign, config, tokenizer.to_dict(), media_dir)
    else:
        media, taken = Path(media_dir) if media_dir is not None else default_media_dir(store, campaign), []
        service.create_campaign(
            store, campaign, media_dir=media, kind=kind, ratings_per_group=ratings_per_group,
            repeat_every=repeat_every, seed=config.seed, dataset_spec=config.dataset, split=config.split,
            expression_basis=dataset.expression_basis, tokenizer=tokenizer.to_dict(),
            config={**(settings or {}), "collect": _config_dict(config)},
        )  # fmt: skip
    chosen = _chosen_clips(dataset.split(config.split).clip_ids, config, taken)
    agents = [
        (spec, load_policy(spec, dataset, seed=config.seed, temperature=config.temperature))
        for spec in config.policies
    ]
    first = len(taken)  # group numbers go on where the campaign left off: new seeds, new broken picks
    broken_groups = _broken_groups(config, first, len(chosen))
    report = CollectReport(campaign=campaign, clip_ids=chosen)
    renderer = _renderer(config) if config.render else None
    try:
        for index, clip_id in enumerate(chosen, start=first):
            clip = dataset.clip(clip_id)
            started = time.perf_counter()
            candidates = _group_candidates(
                env, agents, clip, tokenizer, config, index, index in broken_groups
            )
            report.seconds_rollout += time.perf_counter() - started
            started = time.perf_counter()
            if renderer is not None:
                tokens = [c["tokens"] for c in candidates]
                paths = render_group(
                    renderer, media, clip, tokens, tokenizer, dataset.expression_basis, seed=index
                )
                for c, path in zip(candidates, paths):
                    c["video"] = path
                report.videos += len(candidates)
            report.seconds_render += time.perf_counter() - started
            _store_group(store, campaign, clip, config.split, candidates)
            report.groups += 1
            report.candidates += len(candidates)
            report.broken += sum(c["source"] == "broken" for c in candidates)
            say(f"group {index + 1 - first}/{len(chosen)}: clip {clip_id}, {len(candidates)} candidates")
    finally:
        env.close()
        if renderer is not None:
            renderer.close()
    return report


def _broken_groups(config: CollectConfig, first: int, count: int) -> set[int]:
    """Numbers of the groups that get a broken candidate (seeded; appends draw afresh)."""
    picker = np.random.default_rng([config.seed, 2, first] if first else [config.seed, 2])
    return {first + int(i) for i in picker.permutation(count)[: round(config.broken_fraction * count)]}


def _chosen_clips(available: Sequence[str], config: CollectConfig, taken: Sequence[str]) -> list[str]:
    """The clips to add: ``config.clip_ids``, else ``config.clips`` drawn from those not ``taken`` yet."""
    if config.clip_ids:
        unknown = [c for c in config.clip_ids if c not in set(available)]
        if unknown:
            raise ValueError(f"clips {unknown[:3]} are not in split {config.split!r} of {config.dataset}")
        again = [c for c in config.clip_ids if c in set(taken)]
        if again:
            raise ValueError(f"clips {again[:3]} are already in the campaign; leave them out of --clip-ids")
        return list(config.clip_ids)
    free = [c for c in available if c not in set(taken)]
    if not free:
        raise ValueError(
            f"every clip of split {config.split!r} is already in the campaign; nothing to append"
        )
    return choose_clips(free, config.clips, config.seed if not taken else config.seed + len(taken))


def _extend_campaign(
    store: Store, name: str, config: CollectConfig, tokenizer: dict[str, Any], media_dir: str | Path | None
) -> tuple[Path, list[str]]:
    """Check that ``config`` may add to campaign ``name``; its directory and the clips it already has."""
    with store.write() as session:
        try:
            record = store.campaign(session, name)
        except LookupError as e:
            raise ValueError(
                f"{e}; --append adds to an existing campaign, leave it out to create one"
            ) from None
        for what, theirs, ours in (
            ("dataset", record.dataset_spec, config.dataset),
            ("split", record.split, config.split),
            ("action tokenizer", record.tokenizer, tokenizer),
        ):
            if theirs != ours:
                raise ValueError(
                    f"campaign {name} was collected with {what} {str(theirs)[:80]}; --append must use the same, "
                    f"found {str(ours)[:80]}"
                )
        media = store.media_root(record.media_dir)
        if media_dir is not None and Path(media_dir).resolve() != media:
            raise ValueError(
                f"campaign {name} keeps its videos in {media}; leave --media-dir out with --append"
            )
        taken = list(session.scalars(select(ClipRecord.clip_id).where(ClipRecord.campaign_id == record.id)))
        _note_append(record, config)
    return media, taken


def _note_append(record: Campaign, config: CollectConfig) -> None:
    settings = dict(record.config or {})
    collected = dict(settings.get("collect", {}))
    names = [p["name"] for p in collected.get("policies", [])]
    collected["policies"] = [*collected.get("policies", []), *(
        {"name": p.name, "source": p.source} for p in config.policies if p.name not in names
    )]  # fmt: skip
    settings["collect"] = collected
    settings["appends"] = [*settings.get("appends", []), _config_dict(config)]
    record.config = settings


def default_media_dir(store: Store, campaign: str) -> Path:
    """``<database dir>/campaigns/<campaign>`` for SQLite, else ``./campaigns/<campaign>``."""
    base = store.sqlite_path.parent if store.sqlite_path is not None else Path.cwd()
    return (base / "campaigns" / service.check_campaign_name(campaign)).resolve()


def _config_dict(config: CollectConfig) -> dict[str, Any]:
    out = dict(config.__dict__)
    out["policies"] = [{"name": p.name, "source": p.source} for p in config.policies]
    return out


def _renderer(config: CollectConfig) -> Any:
    from dyadic_env.render import Renderer

    return Renderer(config.video_size, config.video_size, backend=config.backend)


def _group_candidates(
    env: Any, agents: list[tuple[PolicySpec, Any]], clip: Any, tokenizer: Any, config: CollectConfig, index: int,
    with_broken: bool,
) -> list[dict[str, Any]]:  # fmt: skip
    from agents.rollout import rollout

    out: list[dict[str, Any]] = []
    truth = tokenizer.encode(np.asarray(clip.listener_motion))
    if config.ground_truth:
        out.append(
            {"source": "ground_truth", "policy": GROUND_TRUTH, "index": 0, "seed": None, "tokens": truth}
        )
    for p, (spec, agent) in enumerate(agents):
        for i in range(config.samples):
            seed = int(np.random.SeedSequence([config.seed, index, p, i]).generate_state(1)[0] % (2**31))
            trajectory = rollout(env, agent, clip_id=clip.clip_id, seed=seed)
            out.append(
                {
                    "source": "policy",
                    "policy": spec.name,
                    "index": i,
                    "seed": seed,
                    "tokens": trajectory.tokens,
                }
            )
    if with_broken:
        rng = np.random.default_rng([config.seed, index, 3])
        kind = BROKEN_KINDS[index % len(BROKEN_KINDS)]
        out.append(
            {"source": "broken", "policy": f"broken:{kind}", "index": 0, "seed": None,
             "tokens": broken_tokens(truth, kind, tokenizer.num_bins, rng)}
        )  # fmt: skip
    for c in out:
        c["public_id"] = new_public_id("c")
    return out


def _store_group(
    store: Store, campaign: str, clip: Any, split: str, candidates: list[dict[str, Any]]
) -> None:
    with store.write() as session:
        record = store.campaign(session, campaign)
        clip_row = service.add_clip(
            session, record, clip_id=clip.clip_id, fps=clip.fps, speaker_motion=np.asarray(clip.speaker_motion),
            speaker_words=[(w[0], w[1], w[2]) for w in clip.speaker_words], split=split,
            meta={k: v for k, v in (clip.meta or {}).items() if isinstance(v, (str, int, float, bool))},
        )  # fmt: skip
        group = service.add_group(session, record, clip_row)
        for c in candidates:
            service.add_candidate(
                session, record, group, source=c["source"], policy_name=c["policy"], tokens=c["tokens"],
                video_path=c.get("video"), sample_index=c["index"], seed=c["seed"], public_id=c["public_id"],
            )  # fmt: skip
