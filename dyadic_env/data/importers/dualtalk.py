"""DualTalk/RealTalk-style per-person ``.npz`` files.

A source folder (searched recursively) holds, for each conversation ``<conv>``, the files
``<conv>_speaker1.npz`` and ``<conv>_speaker2.npz``; each has ``exp`` (T, 50) FLAME expression and
``pose`` (T, 6) neck then jaw axis-angle rotation at 25 fps (other keys such as ``shape`` are ignored).

Each conversation gives two clips, one per direction: person 1 listening to person 2
(``<conv>/listener1``) and person 2 listening to person 1 (``<conv>/listener2``). When the two files
differ in length, both are trimmed to the shorter one (from the end) and the clip's ``meta`` records the
original lengths. Splits are drawn per conversation (:func:`~dyadic_env.data.importers._common.split_groups`:
``fractions`` by largest remainder, at least one conversation per split while there are enough), so both
directions of a conversation land in the same split.

A person whose partner's file is missing (e.g. a sample of single speakers from different conversations) is
an error by default; ``unpaired="speaker-only"`` imports them as *speaker-only* clips (``<conv>/speaker<n>``):
the person is the speaker, the listener frames are the neutral face (zeros, marked ``meta["speaker_only"]``),
so the env replays the real speaker but metrics against the recorded listener mean nothing there;
``unpaired="skip"`` leaves them out.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dyadic_env.data.clip import Clip
from dyadic_env.data.errors import DataValidationError, array_load_problem
from dyadic_env.data.importers._common import (
    ImportedData,
    float_frames,
    motion_frames,
    require_key,
    split_groups,
)
from dyadic_env.expression_basis import FRAME_DIM

DUALTALK_FPS = 25.0
PERSON_SUFFIXES = {"_speaker1.npz": "1", "_speaker2.npz": "2"}
UNPAIRED = ("error", "speaker-only", "skip")
SPEAKER_ONLY_NOTE = (
    "the listener frames are the neutral face (zeros), not a recording: the env replays the real speaker, but "
    "metrics against the recorded listener mean nothing on these clips"
)


def read_dualtalk(
    src: str | os.PathLike,
    *,
    seed: int = 0,
    fps: float = DUALTALK_FPS,
    fractions: dict[str, float] | None = None,
    unpaired: str = "error",
) -> ImportedData:
    """Read a folder of DualTalk-style conversations; see the module docstring for the layout."""
    if unpaired not in UNPAIRED:
        raise ValueError(f"unpaired: expected one of {UNPAIRED}, found {unpaired!r}")
    src = Path(src)
    conversations = _find_conversations(src, unpaired)
    paired = sum(len(files) == 2 for files in conversations.values())
    alone = len(conversations) - paired
    notes = [f"{paired} conversations, 2 clips each (either person as listener)"] if paired else []
    if alone:
        notes.append(
            f"{alone} speaker-only clip(s) of people whose partner file is missing: {SPEAKER_ONLY_NOTE}"
        )
    names = sorted(conversations)
    split_of = split_groups(names, fractions, seed=seed)
    counts = {s: sum(v == s for v in split_of.values()) for s in dict.fromkeys(split_of.values())}
    notes.append(
        f"split by conversation with seed {seed}: " + ", ".join(f"{s} {n}" for s, n in counts.items())
    )
    return ImportedData(
        source_format="dualtalk", clips=_clips(conversations, split_of, fps, notes), num_clips=2 * paired + alone,
        fps=fps, expression_basis="flame", notes=notes, speaker_only=alone,
    )  # fmt: skip


def _find_conversations(src: Path, unpaired: str) -> dict[str, dict[str, Path]]:
    if not src.is_dir():
        raise DataValidationError(
            str(src), "source folder", "a folder of <conv>_speaker{1,2}.npz files", "no such folder"
        )
    conversations: dict[str, dict[str, Path]] = {}
    for file in sorted(src.rglob("*.npz")):
        for suffix, person in PERSON_SUFFIXES.items():
            if file.name.endswith(suffix):
                conv = str(file.relative_to(src).with_name(file.name[: -len(suffix)]))
                conversations.setdefault(conv, {})[person] = file
    if not conversations:
        raise DataValidationError(
            str(src), "conversation files", "files named <conv>_speaker1.npz and <conv>_speaker2.npz", "none",
            "Each conversation needs one .npz per person with 'exp' (T, 50) and 'pose' (T, 6).",
        )  # fmt: skip
    for conv, files in list(conversations.items()):
        if len(files) != 2 and unpaired == "skip":
            del conversations[conv]
        elif len(files) != 2 and unpaired == "error":
            have = next(iter(files.values()))
            missing = have.with_name(
                have.name.replace(
                    f"_speaker{next(iter(files))}.npz", f"_speaker{'2' if '1' in files else '1'}.npz"
                )
            )
            raise DataValidationError(
                str(missing), "conversation partner", f"the other person of conversation {conv!r} beside {have.name}",
                "no file", "Each conversation needs both <conv>_speaker1.npz and <conv>_speaker2.npz; to import a "
                "lone person as a speaker-only clip, pass --unpaired speaker-only (or skip them: --unpaired skip)",
            )  # fmt: skip
    if not conversations:
        raise DataValidationError(
            str(src), "conversation files", "at least one conversation with both people", "none",
            "Every person lacks a partner file; pass --unpaired speaker-only to import them as speaker-only clips.",
        )  # fmt: skip
    return conversations


def _read_person(file: Path) -> np.ndarray:
    try:
        with np.load(file, allow_pickle=False) as data:
            expected_exp, expected_pose = (
                "FLAME expression of shape (T, 50)",
                "neck and jaw pose of shape (T, 6)",
            )
            exp = float_frames(require_key(data, "exp", file=str(file), where="", expected=expected_exp),
                               file=str(file), key="exp", width=50)  # fmt: skip
            pose = float_frames(require_key(data, "pose", file=str(file), where="", expected=expected_pose),
                                file=str(file), key="pose", width=6)  # fmt: skip
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataValidationError(
            str(file), "file", "a readable .npz archive", array_load_problem(e)
        ) from None
    except ValueError as e:
        if isinstance(e, DataValidationError):
            raise
        raise DataValidationError(
            str(file), "file", "a readable .npz of plain arrays", array_load_problem(e)
        ) from None
    if len(exp) != len(pose):
        raise DataValidationError(
            str(file), "pose", f"{len(exp)} frames (as many as 'exp')", f"{len(pose)} frames"
        )
    if len(exp) == 0:
        raise DataValidationError(str(file), "exp", "at least one frame", "0 frames")
    return motion_frames(exp, pose)


def _clips(
    conversations: dict[str, dict[str, Path]], split_of: dict[str, str], fps: float, notes: list[str]
) -> Iterator[tuple[str, Clip]]:
    """Read one conversation at a time, so a corpus larger than memory streams through."""
    trimmed = []
    for conv in sorted(conversations):
        pair = {person: _read_person(file) for person, file in conversations[conv].items()}
        if len(pair) == 1:
            yield split_of[conv], _speaker_only(conv, *next(iter(pair.items())), fps)
            continue
        frames = min(len(pair["1"]), len(pair["2"]))
        meta: dict = {"conversation": conv}
        if len(pair["1"]) != len(pair["2"]):
            meta["trimmed_from_frames"] = {"speaker1": len(pair["1"]), "speaker2": len(pair["2"])}
            trimmed.append(f"{conv} ({len(pair['1'])} vs {len(pair['2'])} frames)")
        for listener, speaker in (("1", "2"), ("2", "1")):
            yield split_of[conv], Clip(
                clip_id=f"{conv}/listener{listener}", fps=fps, speaker_motion=pair[speaker][:frames],
                listener_motion=pair[listener][:frames], speaker_id=f"{conv}_speaker{speaker}",
                listener_id=f"{conv}_speaker{listener}", source="dualtalk", meta=dict(meta),
            )  # fmt: skip
    if trimmed:
        shown = ", ".join(trimmed[:5]) + (" ..." if len(trimmed) > 5 else "")
        notes.append(
            f"trimmed {len(trimmed)} conversation(s) to the shorter person's length (end cut): {shown}"
        )


def _speaker_only(conv: str, person: str, frames: np.ndarray, fps: float) -> Clip:
    """A lone person as the speaker of a clip whose listener is the neutral face (see the module docstring)."""
    return Clip(
        clip_id=f"{conv}/speaker{person}", fps=fps, speaker_motion=frames,
        listener_motion=np.zeros((len(frames), FRAME_DIM), np.float32), speaker_id=f"{conv}_speaker{person}",
        listener_id="", source="dualtalk",
        meta={"conversation": conv, "speaker_only": True, "listener": SPEAKER_ONLY_NOTE},
    )  # fmt: skip
