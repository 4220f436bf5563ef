"""Marginal discrete diffusion: transitions compose, the limit is the marginals, the posterior is Bayes' rule."""

import torch

from models.processes.discrete_diffusion import MarginalDiffusion


def test_marginal_transitions_are_row_stochastic_and_compose():
    diffusion = MarginalDiffusion(torch.tensor([5.0, 3.0, 1.0, 1.0]), steps=50)
    t = torch.tensor([1, 10, 50])
    q = diffusion.transition(t)
    assert torch.allclose(q.sum(-1), torch.ones(3, 4, dtype=torch.float64))
    # Qbar_t equals the product of the single-step matrices Q_1 ... Q_t
    product = torch.eye(4, dtype=torch.float64)
    for step in range(1, 11):
        product = product @ diffusion.transition(torch.tensor([step]), torch.tensor([step - 1]))[0]
    assert torch.allclose(product, diffusion.transition(torch.tensor([10]))[0], atol=1e-12)
    # the limit is the marginal distribution
    assert torch.allclose(diffusion.transition(torch.tensor([50]))[0], diffusion.marginals.expand(4, 4), atol=1e-3)
    # posterior rows are distributions, and with a certain x0 at s = 0 it returns that x0
    x_t = torch.nn.functional.one_hot(torch.tensor([[1, 2]]), 4).double()
    p_x0 = torch.nn.functional.one_hot(torch.tensor([[3, 0]]), 4).double()
    post = diffusion.posterior_probs(x_t, p_x0, torch.tensor([20]), torch.tensor([0]))
    assert torch.allclose(post, p_x0)
    post = diffusion.posterior_probs(x_t, torch.full((1, 2, 4), 0.25, dtype=torch.float64), torch.tensor([20]), torch.tensor([7]))
    assert torch.allclose(post.sum(-1), torch.ones(1, 2, dtype=torch.float64))


def test_posterior_matches_bayes_rule_by_enumeration():
    diffusion = MarginalDiffusion(torch.tensor([4.0, 2.0, 1.0]), steps=20)
    t, s = torch.tensor([12]), torch.tensor([5])
    p_x0 = torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)
    qs, qts, qt = diffusion.transition(s)[0], diffusion.transition(t, s)[0], diffusion.transition(t)[0]
    for x_t_index in range(3):
        expected = torch.zeros(3, dtype=torch.float64)
        for x0 in range(3):  # q(x_s | x_t, x0) = q(x_t | x_s) q(x_s | x0) / q(x_t | x0)
            expected += p_x0[0, x0] * qts[:, x_t_index] * qs[x0] / qt[x0, x_t_index]
        x_t = torch.nn.functional.one_hot(torch.tensor([x_t_index]), 3).double()[None]
        got = diffusion.posterior_probs(x_t, p_x0[None], t, s)[0, 0]
        assert torch.allclose(got, expected / expected.sum(), atol=1e-12)
