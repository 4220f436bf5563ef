"""Writing files: whole or not at all, outputs checked before any work, standard JSON only."""

import json
import os

import pytest

from qgfd_gen.errors import UsageError
from qgfd_gen.io import check_outputs, write_json

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["qgfd_gen.errors"]


def test_outputs_must_differ_from_inputs_and_each_other(tmp_path):
    source = tmp_path / "in.smi"
    source.write_text("CCO\n")
    with pytest.raises(UsageError, match="--json .* is also --samples"):
        check_outputs({"--json": source}, {"--samples": source})
    with pytest.raises(UsageError, match="--smiles .* is also --out"):
        check_outputs({"--out": tmp_path / "x", "--smiles": tmp_path / "x"})
    check_outputs({"--out": tmp_path / "new" / "deeper" / "grid.png"})  # missing parents are fine ...
    assert not (tmp_path / "new").exists()  # ... and a check leaves nothing behind
    assert source.read_text() == "CCO\n"


def test_unwritable_outputs_are_found_before_any_work(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_outputs({"--out": afile / "sub" / "grid.png"})  # a parent that is a file
    with pytest.raises(UsageError, match="is a folder; it must be a file path"):
        check_outputs({"--out": tmp_path})
    with pytest.raises(UsageError, match="is a file; it must be a folder"):
        check_outputs({"--images-dir": afile}, folders=("--images-dir",))
    with pytest.raises(UsageError, match="cannot be written"):
        check_outputs({"--out": "/proc/qgfd-test/grid.png"})
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(UsageError, match="cannot be written"):
            check_outputs({"--out": locked / "grid.png"})


def test_json_is_standard_nan_becomes_null(tmp_path):
    path = write_json(tmp_path / "x.json", {"fcd": float("nan"), "rows": [1.5, float("inf")]})
    assert json.loads(path.read_text()) == {"fcd": None, "rows": [1.5, None]}
    assert "NaN" not in path.read_text()


def test_written_files_get_the_usual_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_the_code_version_is_the_checkout_commit_or_the_package_version(tmp_path):
    from qgfd_gen.provenance import PROJECT_ROOT, code_version

    version = code_version()
    if (PROJECT_ROOT / ".git").exists():
        assert len(version.split("+")[0]) == 12 and version.split("+")[0].isalnum()
    assert code_version(tmp_path).startswith("qgfd-gen ")  # not a checkout: the installed package's version
    # inside a checkout that is not the project's (a wheel installed into a virtualenv within some repository)
    assert code_version(PROJECT_ROOT / "qgfd_gen").startswith("qgfd-gen ")
