"""BatchedCategorical: the same distribution as SB3's MultiCategorical, in one batched op."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import MultiCategoricalDistribution

from agents.alignment.distributions import BatchedCategorical


def test_matches_sb3_multicategorical() -> None:
    torch.manual_seed(0)
    b, d, n = 5, 7, 11
    logits = torch.randn(b, d, n)
    actions = torch.randint(0, n, (b, d))
    ours = BatchedCategorical(d, n).proba_distribution(logits)
    sb3 = MultiCategoricalDistribution([n] * d).proba_distribution(logits.reshape(b, d * n))
    torch.testing.assert_close(ours.log_prob(actions), sb3.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), sb3.entropy())
    torch.testing.assert_close(ours.mode(), sb3.mode())
    assert spaces.MultiDiscrete([n] * d).contains(ours.sample()[0].numpy())


def test_sampling_follows_the_probabilities() -> None:
    torch.manual_seed(1)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    dist = BatchedCategorical(2, 3).proba_distribution(probs.log().expand(20000, 2, 3))
    samples = dist.sample()
    freq = np.stack([np.bincount(samples[:, j].numpy(), minlength=3) / 20000 for j in range(2)])
    np.testing.assert_allclose(freq, probs.numpy(), atol=0.015)


def test_kl_divergence_is_exact() -> None:
    p = torch.tensor([[[0.5, 0.5], [0.9, 0.1]]])
    q = torch.tensor([[[0.25, 0.75], [0.5, 0.5]]])
    expected = (0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)) + (
        0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    )
    kl = BatchedCategorical(2, 2).proba_distribution(p.log()).kl_divergence(q.log())
    assert abs(float(kl[0]) - expected) < 1e-6
    assert abs(float(BatchedCategorical(2, 2).proba_distribution(p.log()).kl_divergence(p.log())[0])) < 1e-6
