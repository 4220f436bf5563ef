"""Without an optional package (RDKit on a lent GPU's image, say), image and graph models still import and train,
and what needs the package fails at its first use with one line naming it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import ROOT_DIR, TINY_UNET
from qgfd_gen.errors import missing_package

WITHOUT_RDKIT = textwrap.dedent('''
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("rdkit", "fcd"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Block())
    import lightning as L
    from datamodules import DigitsDataModule, SyntheticGraphDataModule
    from models import GraphGeneration, ImageDiffusion
    trainer = lambda: L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    image = ImageDiffusion(unet={**json.loads(sys.argv[2]), "attention": "qgfd"}, schedule={"num_train_timesteps": 20},
                           val_timesteps=2)
    trainer().fit(image, DigitsDataModule(data_dir=sys.argv[1], image_size=8, batch_size=8, val_size=16))
    graphs = GraphGeneration(max_nodes=12, num_train_timesteps=20, network={"node_dim": 8, "edge_dim": 4, "layers": 1, "heads": 2})
    trainer().fit(graphs, SyntheticGraphDataModule(num_nodes=12, batch_size=8))
    from sampling.commands.evaluate import main
    code = main(["molecules", "--samples", sys.argv[1] + "/s.smi", "--train", sys.argv[1] + "/s.smi", "--json",
                 sys.argv[1] + "/out.json"])
    print("EXIT", code, "RDKIT_LOADED", "rdkit" in sys.modules)
''')


def test_image_and_graph_models_train_without_rdkit_and_a_molecule_command_says_what_is_missing(tmp_path):
    (tmp_path / "s.smi").write_text("CCO\n")
    found = subprocess.run([sys.executable, "-c", WITHOUT_RDKIT, str(tmp_path), json.dumps(TINY_UNET)], cwd=ROOT_DIR,
                           capture_output=True, text=True, timeout=600)
    assert "EXIT 2 RDKIT_LOADED False" in found.stdout, found.stderr[-3000:]
    errors = [line for line in found.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: this needs the package 'rdkit' (molecules (RDKit)), which is not installed here: install "
                      "it (pip install rdkit), or use what does not need it"]
    assert "Traceback" not in found.stderr and not (tmp_path / "out.json").exists()


def test_only_optional_packages_get_the_one_line():
    assert missing_package(ModuleNotFoundError("No module named 'rdkit.Chem'", name="rdkit.Chem")).startswith(
        "this needs the package 'rdkit'")
    assert missing_package(ModuleNotFoundError("No module named 'models.typo'", name="models.typo")) is None
    assert missing_package(ValueError("x")) is None


def test_sigterm_and_sigint_end_a_command_with_one_line_and_the_shells_statuses(capsys):
    import os
    import signal
    import time

    from qgfd_gen.errors import command

    @command
    def terminated() -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0

    @command
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert terminated() == 143 and interrupted() == 130
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["error: stopped by SIGTERM; a rerun resumes from the last checkpoint",
                     "error: interrupted; a rerun resumes from the last checkpoint"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_lightning_stopped_by_sigterm_is_not_success(tmp_path, capsys):
    import os
    import signal

    import lightning as L

    from datamodules import SyntheticGraphDataModule
    from models import GraphGeneration
    from qgfd_gen.errors import command

    class SendSigterm(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    @command
    def fit() -> int:
        model = GraphGeneration(max_nodes=12, num_train_timesteps=20,
                                network={"node_dim": 8, "edge_dim": 4, "layers": 1, "heads": 2})
        trainer = L.Trainer(max_steps=50, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            callbacks=[SendSigterm()], default_root_dir=str(tmp_path))
        trainer.fit(model, SyntheticGraphDataModule(num_nodes=12, batch_size=8))
        return 0

    assert fit() == 143
    assert "error: stopped by SIGTERM" in capsys.readouterr().err


def test_a_full_disk_is_one_line(capsys):
    import errno

    from qgfd_gen.errors import command

    @command
    def write() -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out.npz")

    assert write() == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: no space left to write /data/out.npz; nothing partial was kept (outputs are written whole or not at "
        "all): free some space and run it again"]
