"""LM-listener (Ng et al., ICCV 2023, "Can Language Models Learn to Listen?") ``segments_*.pth`` files.

Each ``segments_{train,val,test}.pth`` is a ``torch.save``d list of segment dicts with ``p0_exp`` (T, 50)
and ``p0_pose`` (T, 6) for the listener, ``p1_exp`` and ``p1_pose`` for the speaker, and the speaker's
words ``before_words`` and ``during_words`` (dicts with ``text`` and ``end`` in seconds). Segments
usually also carry ``fname`` (source video) and ``split_start_frame``; frames are 30 fps.

Times. Word ``end`` times count from the start of the source video (LM-listener's own loader places a
word at frame ``ceil(end * fps) - split_start_frame``), so clip time 0 is ``split_start_frame / fps``
(``start_frame`` is accepted too); a segment without either is taken to start at 0, i.e. its word times
are read as already relative to the segment. Words ending inside the clip become ``speaker_words``;
words ending before it (the context LM-listener prompts with) are kept in ``meta["words_before"]`` as
``[end_s, text]`` with negative times; words ending after the clip are dropped and counted in the notes.
A word's start is its ``start`` when given, else the later of the previous word's end and
``end - MAX_WORD_S``, never before 0.

The splits are the files' own (``segments_train.pth`` gives ``train``). Loading uses
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects; ``trust_pickle=True`` lifts
that for files from a source you trust.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from dyadic_env.data.clip import Clip, Word
from dyadic_env.data.errors import DataValidationError
from dyadic_env.data.importers._common import ImportedData, float_frames, motion_frames, require_key
from dyadic_env.data.validation import WORD_TIME_TOLERANCE_S

LM_LISTENER_FPS = 30.0
# Longest duration given to a word whose start is not recorded.
MAX_WORD_S = 0.6
SEGMENT_FILE = re.compile(r"^segments_(?P<split>.+)\.pth$")
MOTION_KEYS = {"p0_exp": 50, "p0_pose": 6, "p1_exp": 50, "p1_pose": 6}


def read_lm_listener(
    src: str | os.PathLike, *, fps: float = LM_LISTENER_FPS, trust_pickle: bool = False
) -> ImportedData:
    """Read ``segments_*.pth`` files from a folder (or one such file); see the module docstring."""
    src = Path(src)
    files = [src] if src.is_file() else sorted(src.glob("segments_*.pth")) if src.is_dir() else []
    if not files:
        raise DataValidationError(
            str(src),
            "segments files",
            "segments_{train,val,test}.pth in the folder (or one such file)",
            "none",
        )
    loaded = [(file, _split_name(file), _load_segments(file, trust_pickle)) for file in files]
    notes = [
        f"splits as given by the files: {', '.join(f'{s} ({len(seg)})' for _, s, seg in loaded)}; {fps:g} fps"
    ]
    total = sum(len(segments) for _, _, segments in loaded)
    return ImportedData("lm-listener", _clips(loaded, fps, notes), total, fps, "flame", notes)


def _split_name(file: Path) -> str:
    match = SEGMENT_FILE.match(file.name)
    if not match:
        raise DataValidationError(
            str(file), "file name", "segments_<split>.pth, e.g. segments_train.pth", file.name
        )
    return match["split"]


def _load_segments(file: Path, trust_pickle: bool) -> list[dict[str, Any]]:
    try:
        import torch
    except ImportError:
        raise ImportError(
            "reading LM-listener .pth files needs torch: pip install 'dyadic-listener[torch]'"
        ) from None
    try:
        data = torch.load(file, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # torch raises many types (UnpicklingError, RuntimeError, EOFError) for bad files
        refused = "Unsupported global" in str(e)
        found = (
            "objects other than tensors, lists and dicts (refused by torch.load(weights_only=True))"
            if refused
            else f"unreadable ({_short_error(e)})"
        )
        hint = (
            "If you trust the file's source, import it with --trust-pickle."
            if refused and not trust_pickle
            else ""
        )
        raise DataValidationError(
            str(file), "file", "a torch.save'd list of segment dicts", found, hint
        ) from None
    if isinstance(data, tuple):
        data = list(data)
    if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
        raise DataValidationError(str(file), "segments", "a list of segment dicts", type(data).__name__)
    return data


def _short_error(error: Exception) -> str:
    """The telling line of a (long, multi-line) torch.load error."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    telling = [line for line in lines if "error" in line.lower() and "Weights only" not in line]
    pick = telling[0] if telling else (lines[0] if lines else type(error).__name__)
    if pick.endswith(":"):  # "WeightsUnpickler error:" is followed by the reason on its own line
        following = lines[lines.index(pick) + 1 : lines.index(pick) + 2]
        pick = " ".join([pick, *following])
    if "WeightsUnpickler error" in pick:
        pick = pick[pick.index("WeightsUnpickler error") :]
    return pick[:200]


def _clips(
    loaded: list[tuple[Path, str, list[dict[str, Any]]]], fps: float, notes: list[str]
) -> Iterator[tuple[str, Clip]]:
    used: set[str] = set()
    dropped = 0
    for file, split, segments in loaded:
        for j, segment in enumerate(segments):
            clip, dropped_here = _segment_clip(segment, file=str(file), number=j, split=split, fps=fps)
            if clip.clip_id in used:  # two segments of one video at one start frame: keep both, apart
                clip = replace(clip, clip_id=f"{clip.clip_id}#{split}{j}")
            used.add(clip.clip_id)
            dropped += dropped_here
            yield split, clip
    if dropped:
        notes.append(f"dropped {dropped} words that end after their segment")


def _segment_clip(
    segment: dict[str, Any], *, file: str, number: int, split: str, fps: float
) -> tuple[Clip, int]:
    where = f"segments[{number}]"
    motion = {
        key: float_frames(
            require_key(segment, key, file=file, where=where, expected=f"an array of shape (T, {width})"),
            file=file,
            key=f"{where}.{key}",
            width=width,
        )
        for key, width in MOTION_KEYS.items()
    }
    frames = len(motion["p0_exp"])
    for key, array in motion.items():
        if len(array) != frames:
            raise DataValidationError(
                file, f"{where}.{key}", f"{frames} frames (as many as p0_exp)", f"{len(array)} frames",
                "Listener (p0) and speaker (p1) arrays of a segment must cover the same frames.",
            )  # fmt: skip
    if frames == 0:
        raise DataValidationError(file, f"{where}.p0_exp", "at least one frame", "0 frames")
    start_frame = segment.get("split_start_frame", segment.get("start_frame"))
    if start_frame is not None and (
        isinstance(start_frame, bool) or not isinstance(_scalar(start_frame), (int, float))
    ):
        raise DataValidationError(file, f"{where}.split_start_frame", "a frame number", repr(start_frame))
    start_s = float(_scalar(start_frame)) / fps if start_frame is not None else 0.0
    words, before, dropped = _words(segment, file=file, where=where, start_s=start_s, duration=frames / fps)
    fname = str(segment.get("fname", "")) or None
    clip_id = (
        f"{fname}_{int(_scalar(start_frame))}"
        if fname and start_frame is not None
        else f"{split}/{number:06d}"
    )
    meta: dict[str, Any] = {"source_start_s": round(start_s, 4)}
    if fname:
        meta["video"] = fname
    if before:
        meta["words_before"] = before
    clip = Clip(
        clip_id=clip_id, fps=fps, speaker_motion=motion_frames(motion["p1_exp"], motion["p1_pose"]),
        listener_motion=motion_frames(motion["p0_exp"], motion["p0_pose"]), speaker_words=tuple(words),
        speaker_id=f"{fname}:p1" if fname else "p1", listener_id=f"{fname}:p0" if fname else "p0",
        source="lm-listener", meta=meta,
    )  # fmt: skip
    return clip, dropped


def _scalar(value: Any) -> Any:
    """Plain Python number from a 0-d tensor or numpy scalar."""
    return value.item() if hasattr(value, "item") else value


def _words(
    segment: dict[str, Any], *, file: str, where: str, start_s: float, duration: float
) -> tuple[list[Word], list[list[Any]], int]:
    timed = []
    for key in ("before_words", "during_words"):
        listed = segment.get(key, [])
        if not isinstance(listed, (list, tuple)):
            raise DataValidationError(file, f"{where}.{key}", "a list of word dicts", type(listed).__name__)
        for i, word in enumerate(listed):
            timed.append(_read_word(word, file=file, field=f"{where}.{key}[{i}]", start_s=start_s))
    timed.sort(key=lambda t: t[1])
    words: list[Word] = []
    before: list[list[Any]] = []
    dropped, previous_end = 0, 0.0
    for start, end, text in timed:
        if end < 0:
            before.append([round(end, 4), text])
        elif end > duration + WORD_TIME_TOLERANCE_S:
            dropped += 1
        else:
            start = start if start is not None else max(previous_end, end - MAX_WORD_S)
            words.append(Word(min(max(start, 0.0), end), end, text))
            previous_end = end
    return words, before, dropped


def _read_word(word: Any, *, file: str, field: str, start_s: float) -> tuple[float | None, float, str]:
    if not isinstance(word, dict):
        raise DataValidationError(file, field, "a dict with 'text' and 'end'", type(word).__name__)
    text, end, start = word.get("text"), _scalar(word.get("end")), _scalar(word.get("start"))
    if not isinstance(text, str) or not text.strip():
        raise DataValidationError(file, f"{field}.text", "a non-empty word", repr(text))
    if isinstance(end, bool) or not isinstance(end, (int, float)) or not math.isfinite(end):
        raise DataValidationError(
            file, f"{field}.end", "the word's end time in seconds", repr(word.get("end"))
        )
    if start is not None and (
        isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start)
    ):
        raise DataValidationError(
            file, f"{field}.start", "the word's start time in seconds", repr(word.get("start"))
        )
    return (None if start is None else float(start) - start_s), float(end) - start_s, text.strip()
