"""Every QGFD path under mixed precision: each transition (grid, knn, adjacency dense and sparse, dense, a given
matrix, including the closed form small graphs take) runs in bfloat16 and float16 under autocast, forward and
backward finite and close to float32 on the same (rounded) inputs. Where a fast path has no low-precision kernel it
falls back explicitly: the CSR product serves float32 / float64 only, so sparse adjacency in bf16 / fp16 takes the
gather path. The image and molecule models' training losses too."""

from __future__ import annotations

import pytest
import torch

from operator_cases import qkv, transitions
from qgfd_gen.operator import qgfd_attention

# bfloat16 keeps 8 bits of mantissa (about 2 decimal digits), float16 11: the errors seen are 5e-3 and 7e-4
TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 3e-3}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", list(transitions()))
def test_each_transition_runs_in_low_precision_close_to_float32(name, dtype):
    transition = transitions()[name]
    if isinstance(transition, torch.Tensor):
        transition = transition.float()
    rounded = [t.to(dtype).float() for t in qkv(torch.float32)]  # the same values in both precisions
    full = [t.clone().requires_grad_() for t in rounded]
    reference = qgfd_attention(*full, transition, alpha=0.5, iterations=4)
    reference.sum().backward()
    low = [t.to(dtype).requires_grad_() for t in rounded]
    with torch.autocast("cpu", dtype=dtype):
        out = qgfd_attention(*low, transition, alpha=0.5, iterations=4)
    out.float().sum().backward()
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert (out.float() - reference).abs().max() < TOLERANCE[dtype]
    for grad_low, grad_full in zip((t.grad for t in low), (t.grad for t in full)):
        assert torch.isfinite(grad_low).all() and (grad_low.float() - grad_full).abs().max() < 2 * TOLERANCE[dtype]


def _loss_and_gradients(model, loss_of, dtype=None):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    if dtype is None:
        loss = loss_of(model)
    else:
        with torch.autocast("cpu", dtype=dtype):
            loss = loss_of(model)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(loss), grads


def test_the_image_models_training_loss_under_bf16_autocast(tiny_image_model):
    model = tiny_image_model(timesteps=50)
    images = torch.rand(4, 1, 8, 8) * 2 - 1

    def loss_of(m):
        noise = torch.randn_like(images)
        return m.diffusion_loss(images, torch.tensor([3, 10, 25, 40]), noise)

    full, _ = _loss_and_gradients(model, loss_of)
    low, grads = _loss_and_gradients(model, loss_of, torch.bfloat16)
    assert low != full and abs(low - full) < 0.03 * full  # autocast took effect, and stayed close
    assert all(torch.isfinite(g).all() for g in grads)


def test_the_molecule_denoisers_closed_form_under_bf16_autocast(tiny_molecule_model):
    model = tiny_molecule_model()
    atoms, bonds = (t[200:232] for t in model.example_graphs)

    def loss_of(m):
        t = torch.randint(1, m.diffusion.num_timesteps + 1, (atoms.shape[0],))
        return m.diffusion.loss(m.denoiser, atoms, bonds, t, m.hparams.edge_weight)[0]

    full, _ = _loss_and_gradients(model, loss_of)
    low, grads = _loss_and_gradients(model, loss_of, torch.bfloat16)
    assert low != full and abs(low - full) < 0.03 * full  # autocast took effect, and stayed close
    assert all(torch.isfinite(g).all() for g in grads)
