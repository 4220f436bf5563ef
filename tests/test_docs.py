"""The front page and the manual: README stays a front page (short, no dated notes, every link resolves), and the
MkDocs site builds with --strict (every page in the nav, every link and anchor found, the API reference rendered
from the docstrings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_the_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200, "README.md is the front page: move detail into docs/"
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Install, test, run", "## Quick start", "## The operator"], headings
    dated = re.findall(r"\b\d{1,2} (?:January|February|March|April|May|June|July|August|September|October|"
                       r"November|December) 20\d\d\b", text)
    assert not dated, f"dated measurement notes belong in docs/results/lab-notes.md: {dated}"


def test_every_link_of_the_readme_resolves():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert local, "the README links to the manual"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_readmes_commands_are_the_ones_ci_runs():
    text = README.read_text()
    assert "pip install -e '.[dev]'" in text and "python -m pytest -q" in text
    assert "lightning fit -c configs/digits.yaml" in text
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()


def test_the_manual_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the manual's tools come with the dev and docs extras")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                                        "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "qgfd_attention" in api and "QGFDAttention" in api and "ImageDiffusion" in api
    assert not (tmp_path / "site" / "results" / "studies" / "planar-cpu" / "runs").exists()  # raw runs stay out


@pytest.mark.parametrize("module", ["qgfd_gen.operator", "qgfd_gen.transitions", "qgfd_gen.attention",
                                    "qgfd_gen.processor", "qgfd_gen.lazy", "sampling.evaluation_options",
                                    "models.networks.digits_classifier", "models.training.image_diffusion",
                                    "datamodules.images", "datamodules.synthetic_graphs", "qgfd_gen.spectral",
                                    "qgfd_gen.attention_statistics", "models.measures.molecule_metrics",
                                    "models.measures.graph_statistics", "models.measures.collapse",
                                    "models.measures.moses_metrics", "models.measures.precision_recall"])
def test_the_public_apis_examples_run(module):
    """The docstrings' examples are doctests: an example that no longer runs fails here."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result
