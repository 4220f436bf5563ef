"""The package roots load their public names on first use: configs still name `models.ImageDiffusion`, and a
light import (errors, file helpers) loads no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qgfd_gen.lazy import lazy_exports


def test_a_lazy_name_loads_its_module_and_an_unknown_one_is_refused():
    getattr_, dir_ = lazy_exports("qgfd_gen", {"qgfd_attention": ".operator"})
    from qgfd_gen.operator import qgfd_attention

    assert getattr_("qgfd_attention") is qgfd_attention and dir_() == ["qgfd_attention"]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        getattr_("nope")


def test_the_package_roots_export_what_configs_name():
    import datamodules
    import models
    import qgfd_gen

    assert models.ImageDiffusion.__name__ == "ImageDiffusion" and models.ImageDiffusion.kind == "images"
    assert datamodules.DigitsDataModule.__module__ == "datamodules.images"
    assert qgfd_gen.GridTransition.__module__ == "qgfd_gen.transitions"
    for package in (models, datamodules, qgfd_gen):
        assert set(package.__all__) == set(dir(package)) and all(getattr(package, n) is not None for n in package.__all__)


def test_importing_the_roots_and_the_errors_loads_no_torch():
    code = ("import sys, models, datamodules, qgfd_gen\nfrom qgfd_gen.errors import UsageError\n"
            "from qgfd_gen.io import write_json\nassert 'torch' not in sys.modules, 'torch loaded'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
