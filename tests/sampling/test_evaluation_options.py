"""A study's `evaluate:` mapping gives exactly the settings of qgfd-eval's options, defaults included, and a bad
mapping is refused naming the value."""

from __future__ import annotations

import pytest

from sampling.commands import evaluate

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["sampling.settings"]


@pytest.mark.parametrize("kind", ["images", "molecules", "graphs"])
def test_an_empty_evaluate_mapping_gives_qgfd_evals_defaults(kind):
    from sampling.evaluation_options import evaluation_settings

    args = evaluate.build_parser().parse_args([kind, "--ckpt", "c.ckpt", "--out", "o"])
    from models.processes.graph_diffusion import CHAIN_SAMPLER

    expected = {"images": evaluate.image_evaluation,
                "molecules": lambda a: __import__("sampling.settings", fromlist=["x"]).MoleculeEvaluation(
                    evaluate.sweep_from_options(a, [CHAIN_SAMPLER])),
                "graphs": lambda a: __import__("sampling.settings", fromlist=["x"]).GraphEvaluation(
                    evaluate.sweep_from_options(a, [CHAIN_SAMPLER]))}[kind](args)
    assert evaluation_settings(kind, "c.ckpt", "o", {}) == expected


def test_evaluate_options_are_the_same_settings_as_on_the_command_line():
    from sampling.evaluation_options import evaluation_settings

    argv = ["images", "--ckpt", "c.ckpt", "--out", "o", "--num-samples", "8", "--steps", "5,10", "--sampler",
            "ddim,adaptive", "--metrics", "fid,nll", "--rtol", "0.2", "--exit-levels", "4", "--nll-timesteps", "3"]
    mapping = {"num_samples": 8, "steps": [5, 10], "sampler": "ddim,adaptive", "metrics": ["fid", "nll"],
               "rtol": [0.2], "exit_levels": [4], "nll_timesteps": 3}
    assert evaluation_settings("images", "c.ckpt", "o", mapping) == evaluate.image_evaluation(
        evaluate.build_parser().parse_args(argv))


@pytest.mark.parametrize("mapping, message", [
    ({"num_sample": 4}, "num_sample are not qgfd-eval graphs options"),
    ({"steps": [0]}, "evaluate.steps=0; need a positive integer"),
    ({"kernel": "l2"}, "evaluate.kernel='l2'; choose from tv, emd"),
    ({"metrics": ["fid"]}, "metrics are not qgfd-eval graphs options"),
])
def test_a_bad_evaluate_mapping_is_refused_naming_the_value(mapping, message):
    from qgfd_gen.errors import UsageError
    from sampling.evaluation_options import evaluation_settings

    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
        evaluation_settings("graphs", "c.ckpt", "o", mapping)
