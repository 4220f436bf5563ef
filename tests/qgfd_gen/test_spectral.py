"""sigmaReparam: its sigma estimate against the true spectral norm, the blocks it leaves alone, when it updates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qgfd_gen.spectral import SigmaReparamLinear, check_spectral


def test_sigma_follows_the_spectral_norm_after_a_few_power_iterations():
    torch.manual_seed(0)
    layer = SigmaReparamLinear(16, 12)
    with torch.no_grad():
        layer.weight.add_(torch.randn_like(layer.weight))  # the SVD at construction is stale now
    for _ in range(30):
        layer.power_iteration()
    true = torch.linalg.matrix_norm(layer.weight.detach(), 2)
    assert float(layer.sigmas()[0].detach()) == pytest.approx(float(true), rel=1e-4)
    effective = layer.effective_weight().detach()
    assert float(torch.linalg.matrix_norm(effective, 2)) == pytest.approx(float(layer.gamma[0].detach()), rel=1e-3)


def test_a_fused_projection_reparametrises_only_the_chosen_blocks():
    torch.manual_seed(1)
    plain = nn.Linear(8, 12, bias=False)
    layer = SigmaReparamLinear.from_linear(plain, blocks=3, reparametrised=(True, True, False))
    effective = layer.effective_weight().detach()
    for index in (0, 1):  # q and k: spectral norm gamma = 1 at the start
        assert float(torch.linalg.matrix_norm(effective[4 * index: 4 * index + 4], 2)) == pytest.approx(1.0, rel=1e-5)
    torch.testing.assert_close(effective[8:], plain.weight.detach()[8:])  # v untouched


def test_only_a_training_forward_with_gradients_moves_the_singular_vectors():
    torch.manual_seed(2)
    layer = SigmaReparamLinear(6, 6)
    with torch.no_grad():
        layer.weight.mul_(torch.linspace(0.5, 2.0, 6)[:, None])
    before = layer.u.clone()
    with torch.no_grad():
        layer(torch.randn(2, 6))
    layer.eval()
    layer(torch.randn(2, 6))
    torch.testing.assert_close(layer.u, before)
    layer.train()
    layer(torch.randn(2, 6)).sum().backward()
    assert not torch.equal(layer.u, before) and layer.gamma.grad is not None and layer.weight.grad is not None


def test_bad_settings_are_refused_naming_them():
    with pytest.raises(ValueError, match="spectral='sigma'; choose one of none, qk, all"):
        check_spectral("sigma")
    with pytest.raises(ValueError, match="blocks=5; need a positive divisor of out_features=12"):
        SigmaReparamLinear(4, 12, blocks=5)
