"""A study file from a stranger runs no code and writes nowhere outside its folder (issue 40's first defects)."""

from __future__ import annotations

import pytest
import yaml

from conftest import TINY_UNET
from qgfd_gen.errors import UsageError
from sampling.commands.study import main


def write(tmp_path, arms=None, name="safe", base_changes=None, goal=None):
    base = {"seed_everything": 0, "trainer": {"accelerator": "cpu", "max_steps": 1},
            "model": {"class_path": "models.ImageDiffusion", "init_args": {"unet": {**TINY_UNET}}},
            "data": {"class_path": "datamodules.DigitsDataModule", "init_args": {"image_size": 8}}}
    base.update(base_changes or {})
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    study = {"name": name, "base": "base.yaml", "seeds": [0], "budget": {"steps": 1},
             "arms": arms or {"a": {}, "b": {}}, "evaluate": {"metrics": ["nll"]}}
    if goal:
        study["goal"] = goal
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return "study.yaml"


MARKER = "pwned-by-study-file"


@pytest.mark.parametrize("mode", ["check", "run"])
@pytest.mark.parametrize("arm", [
    {"model.class_path": "subprocess.Popen", "model.init_args": {"args": ["touch", MARKER]}},
    {"model.class_path": "os.system", "model.init_args": {"command": f"touch {MARKER}"}},
    {"data.class_path": "subprocess.Popen", "data.init_args": {"args": ["touch", MARKER]}},
    {"trainer.callbacks": [{"class_path": "subprocess.Popen", "init_args": {"args": ["touch", MARKER]}}]},
], ids=["model-popen", "model-system", "data-popen", "callback-popen"])
def test_a_class_path_outside_the_project_is_refused_before_anything_is_imported(tmp_path, monkeypatch, capsys, mode,
                                                                                 arm):
    monkeypatch.chdir(tmp_path)
    assert main([mode, "-c", write(tmp_path, arms={"a": {}, "evil": arm}), "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert "is refused: a study may only name the project's classes" in err and "nothing was imported" in err
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "out").exists()


def test_a_base_config_naming_a_foreign_class_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    evil = {"model": {"class_path": "subprocess.Popen", "init_args": {"args": ["touch", MARKER]}}}
    assert main(["check", "-c", write(tmp_path, base_changes=evil), "--out", "out"]) == 2
    assert "model class_path 'subprocess.Popen' is refused" in capsys.readouterr().err
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("name, what", [("../../../x", "arm"), ("/tmp/abs", "arm"), ("a/b", "arm"), (".hidden", "arm")])
def test_arm_names_that_would_leave_the_study_folder_are_refused(tmp_path, monkeypatch, capsys, name, what):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "-c", write(tmp_path, arms={"a": {}, name: {}}), "--out", "out"]) == 2
    assert f"{what} {name!r}: use letters, digits" in capsys.readouterr().err


def test_a_study_name_that_would_leave_studies_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "-c", write(tmp_path, name="../outside")]) == 2
    assert "study name '../outside'" in capsys.readouterr().err


def test_a_misspelt_goal_metric_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    goal = {"metrics": ["nll_bdp"], "against": ["a"]}
    assert main(["check", "-c", write(tmp_path, goal=goal), "--out", "out"]) == 2
    assert "goal.metrics ['nll_bdp'] are not metrics the report knows" in capsys.readouterr().err


class Planted:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_planted_molecule_cache_is_refused_and_never_run(tmp_path):
    import pickle

    from conftest import read_qm9_smiles
    from datamodules import SmilesDataModule
    from qgfd_gen.errors import UsageError

    smiles = tmp_path / "train.smi"
    smiles.write_text("\n".join(read_qm9_smiles(40)) + "\n")
    data = SmilesDataModule(str(smiles), vocab="qm9", data_dir=str(tmp_path / "cache"), batch_size=8)
    data.prepare_data()
    marker = tmp_path / MARKER
    data.cache_path().write_bytes(pickle.dumps({"splits": Planted(marker)}))
    fresh = SmilesDataModule(str(smiles), vocab="qm9", data_dir=str(tmp_path / "cache"), batch_size=8)
    with pytest.raises(UsageError, match="is not a molecule cache this project wrote"):
        fresh.setup()
    assert not marker.exists()


@pytest.mark.parametrize("row", [["not", "a", "mapping"], {"seed": 0}], ids=["list", "no-arm"])
def test_a_hand_edited_study_row_is_refused_in_one_line(tmp_path, monkeypatch, row):
    from sampling.studies.plan import read_study
    from sampling.studies.table import STUDY_FILE, StudyTable

    monkeypatch.chdir(tmp_path)
    plan = read_study(write(tmp_path))
    out = tmp_path / "out"
    StudyTable(out, plan).append({"arm": "a", "seed": 0})
    import json

    data = json.loads((out / STUDY_FILE).read_text())
    data["rows"].append(row)
    (out / STUDY_FILE).write_text(json.dumps(data))
    with pytest.raises(UsageError, match=r"row 1 is not a mapping with an `arm` name and an integer `seed`"):
        StudyTable(out, plan)
