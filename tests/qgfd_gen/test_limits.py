"""Small files that declare huge things are refused in one line before anything is allocated."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from PIL import Image

from qgfd_gen import limits
from qgfd_gen.errors import UsageError

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["models.measures.graph_orbits"]

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


def test_a_graph_file_declaring_millions_of_nodes(tmp_path):
    from datamodules.graph_files import read_graph_file

    (tmp_path / "g.txt").write_text("nodes 30000000\n")
    with pytest.raises(UsageError, match="30,000,000 nodes, over the 10,000 a graph may have here"):
        read_graph_file(tmp_path / "g.txt")


def test_an_npz_declaring_more_than_the_limit(tmp_path, monkeypatch):
    from datamodules.image_sets import open_image_set

    np.savez_compressed(tmp_path / "big.npz", images=np.zeros((4, 8, 8, 3), dtype=np.uint8))
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 100)
    with pytest.raises(UsageError, match=r"array 'images' declares shape \(4, 8, 8, 3\) of uint8"):
        open_image_set(tmp_path / "big.npz")
    (tmp_path / "not.npz").write_bytes(np.arange(3).tobytes())  # not a zip at all
    with pytest.raises(UsageError, match="is not a readable .npz file"):
        limits.check_npz_sizes(tmp_path / "not.npz", "--samples")


def test_an_image_over_the_pixel_limit(tmp_path, monkeypatch):
    from datamodules.image_sets import open_image_set

    (tmp_path / "images").mkdir()
    Image.new("RGB", (11, 11)).save(tmp_path / "images" / "a.png")
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(UsageError, match=r"a.png' is 11 x 11 pixels, over the 100 an image may have"):
        open_image_set(tmp_path / "images")


def test_yaml_alias_bombs_in_study_and_training_configs(tmp_path):
    from models.training.cli import check_config_files
    from sampling.studies.plan import read_study

    (tmp_path / "bomb.yaml").write_text(BILLION_LAUGHS)
    with pytest.raises(UsageError, match="more than 20 YAML aliases"):
        read_study(tmp_path / "bomb.yaml")
    with pytest.raises(UsageError, match="more than 20 YAML aliases"):
        check_config_files(["fit", "-c", str(tmp_path / "bomb.yaml")])
    limits.check_yaml_aliases("a: &x 1\nb: *x\n", "fine")


def test_a_graph_too_dense_for_the_orbit_count():
    from models.measures.graph_orbits import check_orbit_work, orbit_counts

    with pytest.raises(UsageError, match="a graph of 500 nodes and 124,750 edges is too dense"):
        orbit_counts(nx.complete_graph(500))
    check_orbit_work(nx.cycle_graph(64))
