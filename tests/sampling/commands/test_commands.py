"""The commands as thin shells: they parse before anything heavy loads, the old spellings of qgfd-study and
qgfd-bench still work with a one-line notice."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sampling.commands import bench, study

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["sampling.commands.options"]

COMMANDS = ("bench", "evaluate", "export", "feature_extractors", "sample", "study", "upgrade")


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_parses_its_arguments_before_torch_loads(name):
    """--help and argument errors answer at once: the parser is built and run without torch, Lightning or
    diffusers in the process."""
    code = (f"import sys\nfrom sampling.commands import {name} as c\n"
            "parser = getattr(c, 'build_parser', None)\n"
            "try:\n    (parser().parse_args if parser else c.main)(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'lightning', 'diffusers', 'rdkit') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("old, new", [
    (["-c", "s.yaml", "--dry-run"], ["check", "-c", "s.yaml"]),
    (["-c", "s.yaml", "--out", "o", "--report-only"], ["report", "-c", "s.yaml", "--out", "o"]),
    (["-c", "s.yaml", "--drop", "vanilla:0", "--drop", "rrwp:1"], ["drop", "-c", "s.yaml", "vanilla:0", "rrwp:1"]),
    (["-c", "s.yaml", "--jobs", "2"], ["run", "-c", "s.yaml", "--jobs", "2"]),
    (["run", "-c", "s.yaml"], ["run", "-c", "s.yaml"]),
])
def test_qgfd_study_takes_its_old_spellings_with_a_notice(old, new, capsys):
    assert study.modern_argv(old) == new
    notice = capsys.readouterr().err
    assert (f"use `qgfd-study {' '.join(new)}`" in notice) == (old != new)
    study.build_parser().parse_args(new)  # and the new form parses


@pytest.mark.parametrize("old, new", [
    ([], ["operator"]),
    (["--suite", "unet", "--repeats", "1"], ["unet", "--repeats", "1"]),
    (["--sizes", "64", "--suite=operator"], ["operator", "--sizes", "64"]),
    (["gpu", "--tiny"], ["gpu", "--tiny"]),
])
def test_qgfd_bench_takes_its_old_spellings_with_a_notice(old, new, capsys):
    assert bench.modern_argv(old) == new
    assert ("deprecated" in capsys.readouterr().err) == (old != new)
    bench.build_parser().parse_args(new)
