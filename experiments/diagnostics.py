"""Diagnostics of a VLA policy's motion: does it continue movements, and does it respond when the speaker pauses?

Two measurements, both on a split's clips (``dyadic diagnose --policy CKPT``):

- **Teacher-forced dynamics.** Given the true history, how does the policy's expected next value depend on the
  last step? For each dimension, the least-squares slope of the expected step ``E[a_t] - a_{t-1}`` on the last
  step ``a_{t-1} - a_{t-2}``, against the same slope of the true step (the data's own momentum), and the
  policy's predicted spread against the spread of the true step around that momentum. A slope near zero where
  the data's is 0.5 means the policy copies the last frame and leaves motion to sampling noise.
- **Response after phrase ends.** The mean change of a dimension (by default the head's pitch: a nod) in the
  1.2 s after each phrase end (pauses found from the speaker's words, as a listener hears them), for the data,
  for the policy's teacher-forced expected steps (summed) and for closed-loop samples.
- **Pause read-out.** How well a linear probe on the backbone's frame hidden states tells the frames 0.2-0.8 s
  after a phrase end (when a listener nods) from the rest (ROC AUC on the diagnosed clips, probe fitted on
  others). Near 0.5: the network has not learned to notice that the speaker paused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from dyadic_env.expression_basis import EXPRESSION, NECK_POSE
from dyadic_env.synthetic.oracle import speaker_context

DIMENSIONS: dict[str, list[int]] = {
    "head pitch": [NECK_POSE.start],
    "head yaw": [NECK_POSE.start + 1],
    "head roll": [NECK_POSE.start + 2],
    "expression (mean over 50)": list(range(EXPRESSION.start, EXPRESSION.stop)),
}
RESPONSE_SECONDS = 1.2


class TeacherForced(NamedTuple):
    """One clip under teacher forcing: true frames and the policy's moments and hidden states, per frame."""

    truth: np.ndarray  # (T, 56) the decoded true frames
    mean: np.ndarray  # (T, 56) the policy's expected value
    spread: np.ndarray  # (T, 56) the policy's standard deviation
    hidden: torch.Tensor  # (T, H) the frame hidden states


@torch.no_grad()
def teacher_forced(model: Any, clip: Any) -> TeacherForced:
    """Run one clip through the policy with its true history (one forward pass)."""
    batch = model.processor.clips_batch([clip])
    out = model(**batch)
    probs = torch.softmax(out.logits[0].float(), -1)  # (T, 56, bins)
    centers = model.vla.bin_centers
    mean = (probs * centers).sum(-1)
    spread = (probs * (centers - mean[..., None]) ** 2).sum(-1).sqrt()
    truth = model.vla.decode_actions(batch["actions"][0])
    return TeacherForced(truth.numpy(), mean.numpy(), spread.numpy(), out.frame_hidden[0].float())


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / max(float((x * x).sum()), 1e-12))


def dynamics(runs: Sequence[TeacherForced]) -> dict[str, dict[str, float]]:
    """Per dimension group: policy and data momentum slopes, predicted spread and the data's step spread."""
    last, expected, true, spread = [], [], [], []
    for truth, mean, sd, _ in runs:
        last.append(truth[1:-1] - truth[:-2])
        expected.append(mean[2:] - truth[1:-1])
        true.append(truth[2:] - truth[1:-1])
        spread.append(sd[2:])
    x, y_policy, y_data, sd = (np.concatenate(v) for v in (last, expected, true, spread))
    out = {}
    for name, dims in DIMENSIONS.items():
        rows = []
        for d in dims:
            data_slope = _slope(x[:, d], y_data[:, d])
            residual = y_data[:, d] - data_slope * (x[:, d] - x[:, d].mean())
            rows.append((_slope(x[:, d], y_policy[:, d]), data_slope, sd[:, d].mean(), residual.std()))
        policy_slope, data_slope, policy_sd, data_sd = np.mean(rows, axis=0)
        out[name] = {"policy_slope": float(policy_slope), "data_slope": float(data_slope),
                     "policy_spread": float(policy_sd), "data_step_spread": float(data_sd)}  # fmt: skip
    return out


def phrase_ends(clip: Any) -> np.ndarray:
    """Frames at which the speaker's phrases end (a pause follows), from the words as heard."""
    motion = np.asarray(clip.speaker_motion, np.float64)
    return speaker_context(motion, clip.speaker_words, clip.fps).phrase_ends


def response_after_phrase_ends(
    clips: Sequence[Any],
    runs: Sequence[TeacherForced],
    sampled: Sequence[np.ndarray] | None = None,
    dim: int = NECK_POSE.start,
) -> dict[str, Any]:
    """Mean change of ``dim`` over the 1.2 s after each phrase end: data, teacher-forced policy, samples.

    ``runs`` are the clips' :func:`teacher_forced` passes; ``sampled`` closed-loop trajectories ``(T, 56)``
    (continuous), one per clip, or None.
    """
    fps = float(clips[0].fps)
    span = round(RESPONSE_SECONDS * fps)
    data, policy, closed = [], [], []
    for i, (clip, (truth, mean, _, _)) in enumerate(zip(clips, runs, strict=True)):
        expected_step = np.concatenate([[0.0], mean[1:, dim] - truth[:-1, dim]])
        for end in phrase_ends(clip):
            if end < 1 or end + span >= len(truth):
                continue
            window = slice(end + 1, end + span + 1)
            data.append(truth[window, dim] - truth[end, dim])
            policy.append(np.cumsum(expected_step[window]))
            if sampled is not None:
                closed.append(sampled[i][window, dim] - sampled[i][end, dim])
    if not data:
        raise ValueError("response_after_phrase_ends: no clip has a phrase end followed by 1.2 s of frames")
    seconds = (np.arange(span) + 1) / fps
    result: dict[str, Any] = {"seconds": seconds, "phrase_ends": len(data), "data": np.mean(data, 0),
                              "policy_teacher_forced": np.mean(policy, 0)}  # fmt: skip
    if closed:
        result["policy_closed_loop"] = np.mean(closed, 0)
    return result


def _after_pause_labels(clip: Any) -> np.ndarray:
    labels = np.zeros(clip.num_frames, dtype=bool)
    for end in phrase_ends(clip):
        labels[end + round(0.2 * clip.fps) : end + round(0.8 * clip.fps)] = True
    return labels


def _frame_states(clips: Sequence[Any], runs: Sequence[TeacherForced]) -> tuple[torch.Tensor, np.ndarray]:
    hidden = torch.cat([run.hidden for run in runs])
    return hidden, np.concatenate([_after_pause_labels(clip) for clip in clips])


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    positives, negatives = scores[labels], scores[~labels]
    if positives.size == 0 or negatives.size == 0:
        raise ValueError("roc_auc needs both positive and negative frames")
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return float(greater + 0.5 * ties)


def pause_readout(
    model: Any,
    fit_clips: Sequence[Any],
    eval_clips: Sequence[Any],
    eval_runs: Sequence[TeacherForced] | None = None,
    seed: int = 0,
) -> float:
    """ROC AUC of a logistic probe on frame hidden states for "0.2-0.8 s after a phrase end".

    The probe is fitted on ``fit_clips`` and scored on ``eval_clips`` (their :func:`teacher_forced` passes
    ``eval_runs`` when already run).
    """
    x_fit, y_fit = _frame_states(fit_clips, [teacher_forced(model, clip) for clip in fit_clips])
    eval_runs = [teacher_forced(model, clip) for clip in eval_clips] if eval_runs is None else eval_runs
    x_eval, y_eval = _frame_states(eval_clips, eval_runs)
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-6
    x_fit, x_eval = (x_fit - mean) / std, (x_eval - mean) / std
    torch.manual_seed(seed)
    probe = torch.nn.Linear(x_fit.shape[1], 1)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=200, line_search_fn="strong_wolfe")
    target = torch.from_numpy(y_fit).float()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(probe(x_fit)[:, 0], target)
        loss = loss + 1e-3 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        scores = probe(x_eval)[:, 0].numpy()
    return roc_auc(scores, y_eval)


def markdown(
    dyn: dict[str, dict[str, float]], response: dict[str, Any], readout: float | None = None, every: int = 5
) -> str:
    """The diagnostics as Markdown (the response every ``every`` frames)."""
    lines = (
        [] if readout is None else [f"Pause read-out from the frame hidden states: ROC AUC {readout:.3f}", ""]
    )
    lines += [
        "| Dimension | policy slope | data slope | policy spread | data step spread |",
        "|---|---|---|---|---|",
    ]
    for name, row in dyn.items():
        lines.append(f"| {name} | {row['policy_slope']:+.3f} | {row['data_slope']:+.3f} | "
                     f"{row['policy_spread']:.4f} | {row['data_step_spread']:.4f} |")  # fmt: skip
    keys = [k for k in ("data", "policy_teacher_forced", "policy_closed_loop") if k in response]
    picks = range(every - 1, len(response["seconds"]), every)
    lines += ["", f"Change after {response['phrase_ends']} phrase ends (x 100):", "",
              "| seconds | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]  # fmt: skip
    for i in picks:
        values = " | ".join(f"{100 * response[k][i]:+.2f}" for k in keys)
        lines.append(f"| {response['seconds'][i]:.2f} | {values} |")
    return "\n".join(lines)
