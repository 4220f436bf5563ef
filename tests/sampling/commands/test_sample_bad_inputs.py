"""qgfd-sample against careless and hostile input: status 2, a message naming the bad value, and no input
or earlier output changed."""

import pytest
import torch

from sampling.commands.sample import main as sample_main


def fingerprint(*paths):
    return [p.read_bytes() if p.is_file() else None for p in paths]


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "'0': need a positive integer"),
    (["--num", "-3"], "'-3': need a positive integer"),
    (["--eta", "5"], "'5': DDIM's eta must be in [0, 1]"),
    (["--eta", "nan"], "'nan': DDIM's eta must be in [0, 1]"),
    (["--device", "cuda:7"], "cuda:7"),
    (["--device", "toaster"], "'toaster': not a device"),
    (["--sampler", "euler"], "invalid choice: 'euler'"),
])
def test_bad_numbers_and_choices(image_checkpoint, tmp_path, capsys, argv, message):
    out = tmp_path / "grid.png"
    with pytest.raises(SystemExit) as exit_info:
        sample_main(["images", "--ckpt", str(image_checkpoint), "--out", str(out), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_wrong_kind_garbage_and_truncated_checkpoints(image_checkpoint, molecule_checkpoint, tmp_path, capsys):
    garbage, cut, empty = tmp_path / "garbage.ckpt", tmp_path / "cut.ckpt", tmp_path / "empty.ckpt"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    cut.write_bytes(molecule_checkpoint.read_bytes()[:5000])
    empty.write_bytes(b"")
    torch.save({"weights": torch.ones(2)}, tmp_path / "plain.ckpt")
    for path, message in ((garbage, "not a readable checkpoint"), (cut, "not a readable checkpoint"),
                          (empty, "not a readable checkpoint"), (tmp_path / "plain.ckpt", "not a Lightning checkpoint"),
                          (image_checkpoint, "holds an image model, not a molecule model"), (tmp_path, "is not a file")):
        assert sample_main(["molecules", "--ckpt", str(path), "--out", str(tmp_path / "m.png"),
                            "--smiles", str(tmp_path / "m.smi")]) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err and err.count("\n") == 1
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "m.smi").exists()


def test_outputs_never_clobber_inputs_or_each_other(molecule_checkpoint, tmp_path, capsys):
    before = fingerprint(molecule_checkpoint)
    same = tmp_path / "x"
    assert sample_main(["molecules", "--ckpt", str(molecule_checkpoint), "--out", str(same), "--smiles", str(same)]) == 2
    assert "--smiles" in capsys.readouterr().err and not same.exists()
    assert sample_main(["molecules", "--ckpt", str(molecule_checkpoint), "--out", str(molecule_checkpoint),
                        "--smiles", str(tmp_path / "m.smi")]) == 2
    assert "is also --ckpt" in capsys.readouterr().err
    assert fingerprint(molecule_checkpoint) == before


def test_unwritable_outputs_fail_before_sampling(image_checkpoint, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    for argv in (["--out", str(blocker / "grid.png")], ["--out", "/proc/qgfd/grid.png"], ["--out", str(tmp_path)],
                 ["--out", str(tmp_path / "g.png"), "--images-dir", str(blocker)]):
        assert sample_main(["images", "--ckpt", str(image_checkpoint), "--num", "2", "--steps", "2", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "images, " not in err  # refused, not sampled
    assert blocker.read_text() == "a file where a folder should be"
