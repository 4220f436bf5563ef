"""qgfd-eval against careless input: malformed SMILES files, mixed runs, clobbering paths, bad numbers."""

import json

import pytest

from conftest import read_qm9_smiles
from sampling.commands.evaluate import main as eval_main


@pytest.fixture
def smiles_files(tmp_path):
    samples, train, test = tmp_path / "s.smi", tmp_path / "train.smi", tmp_path / "test.smi"
    samples.write_text("CCO\n\nCCN\nc1ccccc1\n")
    train.write_text("\n".join(read_qm9_smiles(30, offset=100)) + "\n")
    test.write_text("\n".join(read_qm9_smiles(30, offset=200)) + "\n")
    return samples, train, test


def score(samples, train, out, *extra):
    return eval_main(["molecules", "--samples", str(samples), "--train", str(train), "--json", str(out), *extra])


def test_csv_files_with_headers_score_like_plain_files(smiles_files, tmp_path):
    samples, train, _ = smiles_files
    csv_train = tmp_path / "train.csv"
    csv_train.write_text("smiles,logP\n" + "".join(f"{s},1.0\n" for s in train.read_text().split()))
    csv_samples = tmp_path / "s.csv"
    csv_samples.write_text("SMILES\nCCO\n\nCCN\nc1ccccc1\n")
    assert score(samples, train, tmp_path / "plain.json") == 0
    assert score(csv_samples, csv_train, tmp_path / "csv.json") == 0
    plain, table = (json.loads((tmp_path / name).read_text()) for name in ("plain.json", "csv.json"))
    for key in ("validity", "uniqueness", "novelty", "num_samples"):
        assert plain[key] == table[key], key
    assert plain["num_samples"] == 4 and plain["validity"] == 0.75


def test_empty_inputs_are_refused(smiles_files, tmp_path, capsys):
    samples, train, _ = smiles_files
    empty = tmp_path / "empty.smi"
    empty.write_text("")
    assert score(empty, train, tmp_path / "o.json") == 2
    assert "holds no samples" in capsys.readouterr().err
    nonsense = tmp_path / "nonsense.smi"
    nonsense.write_text("xx\nyy\n")
    assert score(samples, nonsense, tmp_path / "o.json") == 2
    assert "training file" in capsys.readouterr().err and not (tmp_path / "o.json").exists()
    assert score(samples, tmp_path / "missing.smi", tmp_path / "o.json") == 2
    assert "missing.smi' does not exist" in capsys.readouterr().err


def test_too_long_smiles_and_undefined_fcd_are_written_as_standard_json(smiles_files, tmp_path, capsys):
    _, train, test = smiles_files
    samples = tmp_path / "huge.smi"
    samples.write_text("C" * 100_000 + "\nCCO\n")
    out = tmp_path / "o.json"
    assert eval_main(["molecules", "--samples", str(samples), "--train", str(train), "--test", str(test),
                      "--json", str(out)]) == 0
    assert "1 samples longer than 512 characters counted invalid" in capsys.readouterr().err
    scores = json.loads(out.read_text())  # json.loads refuses NaN: the file is standard JSON
    assert scores["num_too_long"] == 1 and scores["validity"] == 0.5
    assert scores["fcd"] is None and "needs at least 2 valid samples" in scores["fcd_note"]


def test_the_json_never_replaces_an_input(smiles_files, capsys):
    samples, train, _ = smiles_files
    before = samples.read_text()
    assert score(samples, train, samples) == 2
    assert "--json" in capsys.readouterr().err and samples.read_text() == before


def test_a_sweep_never_mixes_runs(image_checkpoint, molecule_checkpoint, tmp_path, capsys):
    out = tmp_path / "sweep"
    common = ["--num-samples", "4", "--steps", "2", "--metrics", "nll", "--nll-images", "1", "--nll-timesteps", "2"]
    assert eval_main(["images", "--ckpt", str(image_checkpoint), *common, "--out", str(out)]) == 0
    first = (out / "results.json").read_text()
    assert eval_main(["images", "--ckpt", str(image_checkpoint), *common, "--eta", "0.5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds results of another run (eta: 0.0 there, 0.5 now)" in err and "give a new --out" in err
    assert (out / "results.json").read_text() == first
    (out / "results.json").write_text(first[: len(first) // 2])  # a truncated results file is named
    assert eval_main(["images", "--ckpt", str(image_checkpoint), *common, "--out", str(out)]) == 2
    assert "results.json' is not a results file" in capsys.readouterr().err


def test_default_folders_differ_per_checkpoint_content(image_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["--num-samples", "2", "--steps", "2", "--metrics", "nll", "--nll-images", "1", "--nll-timesteps", "2"]
    assert eval_main(["images", "--ckpt", str(image_checkpoint), *common]) == 0
    (folder,) = tmp_path.glob("eval-images-tiny-*")
    assert len(folder.name) == len("eval-images-tiny-") + 8
