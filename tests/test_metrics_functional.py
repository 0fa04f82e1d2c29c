"""Each metric on small matrices whose answers can be checked by hand."""

import math

import numpy as np
import pytest
import torch

from rl_plasticity.metrics import functional as fm


def test_identity_has_full_effective_and_stable_rank():
    sigma = fm.singular_values(np.eye(4))
    assert fm.effective_rank(sigma) == pytest.approx(4.0)
    assert fm.stable_rank(sigma) == pytest.approx(4.0)
    assert fm.feature_rank(sigma) == 4


def test_rank_one_matrix_has_rank_one():
    h = np.outer([1.0, 2.0, 3.0], [1.0, -1.0, 0.5, 2.0])
    sigma = fm.singular_values(h)
    assert fm.effective_rank(sigma) == pytest.approx(1.0)
    assert fm.stable_rank(sigma) == pytest.approx(1.0)
    assert fm.feature_rank(sigma) == 1


def test_known_spectrum():
    # sum = 16.1; 99% of it is 15.939: 10 + 5 = 15 < 15.939 <= 16, so srank = 3.
    sigma = [10.0, 5.0, 1.0, 0.1]
    assert fm.feature_rank(sigma, delta=0.01) == 3
    # 50%: 10 >= 8.05 already.
    assert fm.feature_rank(sigma, delta=0.5) == 1
    assert fm.stable_rank(sigma) == pytest.approx((100 + 25 + 1 + 0.01) / 100)
    # Two equal singular values and a zero one: p = (1/2, 1/2, 0), 0 log 0 = 0 -> exp(log 2) = 2.
    assert fm.effective_rank([3.0, 3.0, 0.0]) == pytest.approx(2.0)


def test_singular_values_of_a_diagonal_matrix():
    sigma = fm.singular_values(np.diag([1.0, 3.0, 2.0]))
    assert sigma.tolist() == pytest.approx([3.0, 2.0, 1.0])


def test_zero_matrix_has_rank_zero_and_all_units_dead():
    h = np.zeros((5, 3))
    sigma = fm.singular_values(h)
    assert fm.effective_rank(sigma) == 0.0
    assert fm.stable_rank(sigma) == 0.0
    assert fm.feature_rank(sigma) == 0
    assert fm.dead_unit_fraction(h) == 1.0
    assert fm.dormant_fraction(h) == 1.0
    assert fm.cloned_unit_fraction(h) == 0.0


def test_relu_of_negative_preactivations_is_all_dead():
    pre = -torch.rand(16, 8) - 0.1
    assert fm.dead_unit_fraction(torch.relu(pre)) == 1.0


def test_dead_units_by_hand():
    h = np.zeros((100, 4))
    h[:, 0] = 1.0  # always active
    h[0, 1] = 0.5  # active on 1 sample of 100: not dead, but rarely active
    h[:5, 2] = 0.5  # active on 5%
    # unit 3: never active
    assert fm.dead_unit_fraction(h) == 0.25
    assert fm.dead_unit_fraction(h, max_active_fraction=0.01) == 0.5
    # The general definition: |h| <= 1e-7 on 99% or more.
    h[:, 3] = 1e-8
    assert fm.dead_unit_fraction(h, threshold=1e-7, max_active_fraction=0.01) == 0.5


def test_saturated_units_by_hand():
    h = np.zeros((200, 3))
    h[:, 0] = 0.999  # tanh-saturated everywhere
    h[:, 1] = -0.995
    h[0, 1] = 0.0  # unsaturated on 1 of 200 samples (0.5%): still saturated on > 99%
    h[:, 2] = 0.5
    assert fm.saturated_fraction(h, "tanh") == pytest.approx(2 / 3)
    s = np.array([[0.001, 0.5], [0.999, 0.5], [0.005, 0.5]])
    assert fm.saturated_fraction(s, "sigmoid") == 0.5


def test_dormant_by_hand():
    # E|h| per unit = (1, 1, 1, 0.05): mean 0.7625; scores 1.31, 1.31, 1.31, 0.0656.
    h = np.array([[1.0, -1.0, 2.0, 0.1], [1.0, 1.0, 0.0, 0.0]])
    assert fm.dormant_fraction(h, tau=0.025) == 0.0
    assert fm.dormant_fraction(h, tau=0.1) == 0.25


def test_duplicated_column_is_cloned():
    h = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [2.0, 0.0, 2.0, 0.0]])
    # Columns 0 and 2 are equal; column 3 is zero (dead, not a clone); column 1 is orthogonal.
    assert fm.cloned_unit_fraction(h) == 0.5
    # A scaled copy is a clone too (cosine 1).
    h[:, 2] *= 3.0
    assert fm.cloned_unit_fraction(h) == 0.5


def test_feature_norm_weights_and_gradients():
    h = np.array([[3.0, 4.0], [0.0, 0.0]])
    assert fm.feature_norm(h) == pytest.approx(2.5)
    w = torch.tensor([[1.0, -1.0], [3.0, -3.0]])
    assert fm.mean_abs(w) == pytest.approx(2.0)
    assert fm.rms(w) == pytest.approx(math.sqrt(5.0))
    assert fm.rms_change(w, w - 0.5) == pytest.approx(0.5)
    assert fm.global_norm([torch.tensor([3.0]), None, torch.tensor([[4.0]])]) == pytest.approx(5)
    assert math.isnan(fm.global_norm([None]))


def test_layer_metrics_are_the_registry_s_and_follow_the_activation():
    from rl_plasticity.catalog import ACTIVATIONS
    from rl_plasticity.metrics.registry import METRICS

    h = torch.tensor([[0.0, 1.0, 2.0], [0.0, 3.0, 1.0], [0.0, 2.0, 5.0], [0.0, 1.0, 1.0]])
    weight = torch.ones(3, 2)
    relu = fm.layer_metrics(h, ACTIVATIONS["relu"], weight, None, None)
    assert set(relu) <= set(METRICS) and "saturated" not in relu
    assert relu["dead"] == pytest.approx(1 / 3)  # the first unit is 0 on every sample
    assert np.isnan(relu["weight_change"]) and np.isnan(relu["grad_norm"])
    tanh = fm.layer_metrics(
        torch.tanh(h), ACTIVATIONS["tanh"], weight, weight + 0.5, torch.tensor(2.0)
    )
    assert "saturated" in tanh and tanh["weight_change"] == pytest.approx(0.5)
    assert tanh["grad_norm"] == pytest.approx(2.0)
