"""LightningCLI for every model and data module of the workbench: the engine of the `lightning` command
(`sampling.commands.lightning`) and of the studies' training runs.

Configuration errors (a value out of range, an unknown key) are one line and exit status 2, as are data
missing offline and a --ckpt_path that is missing, unsafe, of an old format or of the other kind of model.

Lightning 2.5.1+ ships no `lightning` command of its own; this one runs LightningCLI in subclass
mode, so configs name their classes (`class_path: models.ImageDiffusion`).
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import NoReturn, Optional

import torch

# Lightning's CLI calls jsonargparse functions that jsonargparse has deprecated: nothing a user can act on
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI  # noqa: E402

from qgfd_gen.checkpoints import check_file, read_checkpoint, record_of
from qgfd_gen.errors import UsageError

# what jsonargparse says around the real reason when a nested config value is refused
GENERIC = ("Expected a ", "Does not validate against", "Problem with given class_path", "Not a valid subclass",
           "Given value", "Subtypes:", "Errors:", "Import path", "Not a subclass")
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")
PREFIX = "invalid configuration: "


def condensed(message: str) -> str:
    """One line from jsonargparse's nested error report: the reasons, without the union bookkeeping, and
    where they apply."""
    inner = re.findall(r" \(at ([\w.]+)\)", message)  # where a nested parser already said it applies
    message = re.sub(r" \(at [\w.]+\)", "", message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    reasons = []
    for text in lines:
        if text.startswith("- "):
            text = text[2:].strip()
            if text and not text.startswith(GENERIC) and text not in reasons:
                reasons.append(text)
    keys = [part.split('"')[1] for part in message.split("Parser key ")[1:] if part.count('"') >= 2] + inner
    where = f" (at {'.'.join(dict.fromkeys(keys))})" if keys else ""
    if not reasons:  # a flat report: 'Parser key "x":' then the reason on its own line
        reasons = [text for text in lines if not text.startswith(("Parser key ", "Traceback", "File "))][:1]
    return ("; ".join(reasons) + where) if reasons else lines[0]


class OneLineParser(LightningArgumentParser):
    """Configuration errors become one UsageError line instead of usage text and nested tracebacks."""

    def error(self, message: str, ex: Optional[Exception] = None) -> NoReturn:
        raise UsageError(f"{PREFIX}{condensed(message.replace(PREFIX, ''))}")


class WorkbenchCLI(LightningCLI):
    """LightningCLI that checks a given --ckpt_path before any work (it exists, is a safe plain-data
    checkpoint of this workbench's current format, and holds the kind of model the config trains), and
    reports a config value its class refuses (say qgfd.alpha 1.5) as one line."""

    def _parse_ckpt_path(self) -> None:
        # Lightning's own step replaces the configured model by the checkpoint's hyper-parameters; a
        # checkpoint of the other kind would silently swap the model, so the record is checked first
        self._check_ckpt_path()
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path is None or not Path(path).is_file():
            return super()._parse_ckpt_path()
        hparams = dict(read_checkpoint(path).get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return None
        if "_class_path" in hparams:  # written by a model LightningCLI built
            model = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        else:  # built in Python (a notebook, a test): the config names the class, already checked above
            model = {"class_path": self.config[subcommand]["model"]["class_path"], "init_args": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)
        return None

    def _check_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path is None or str(path) in LIGHTNING_CKPT_NAMES or str(path).startswith("registry:"):
            return
        class_path = str(self.config[subcommand].get("model", {}).get("class_path", ""))
        module_name, _, class_name = class_path.rpartition(".")
        kind = getattr(getattr(importlib.import_module(module_name), class_name, None), "kind", None) if module_name else None
        if kind:
            check_file(path, kind, hint="train it with a config of {found} model")
        else:  # a model class of another project: still only a safe, current-format file
            record_of(read_checkpoint(path), path)

    def before_predict(self) -> None:
        """Prediction draws samples from noise: no data set is read, and the samples are written by a
        models.SampleWriter (one with its defaults is added when the config has none)."""
        from models.training.predict import SampleWriter

        self.datamodule = None
        if not any(isinstance(callback, SampleWriter) for callback in self.trainer.callbacks):
            self.trainer.callbacks.append(SampleWriter())

    def instantiate_classes(self) -> None:
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        try:
            super().instantiate_classes()
        except (ValueError, MisconfigurationException) as error:  # a value a class refuses (the Trainer's too)
            raise UsageError(f"{PREFIX}{condensed(str(error))}") from None


def default_precision() -> str:
    """Mixed precision where the hardware has it, full precision elsewhere."""
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def check_config_files(argv: Optional[list[str]]) -> None:
    """The YAML files given with -c / --config, checked for alias bombs before jsonargparse expands them; --model
    options beside --ckpt_path refused (the resumed checkpoint's model replaces them, silently otherwise)."""
    import sys
    from pathlib import Path

    from qgfd_gen.limits import check_yaml_aliases

    args = list(sys.argv[1:] if argv is None else argv)
    for flag, value in zip(args, args[1:]):
        if flag in ("-c", "--config") and Path(value).is_file():
            check_yaml_aliases(Path(value).read_text(), f"config {value!r}")
    overrides = [a.split("=")[0] for a in args if a.startswith("--model.") or a.startswith("--model=")]
    if overrides and any(a == "--ckpt_path" or a.startswith("--ckpt_path=") for a in args):
        from qgfd_gen.errors import UsageError

        raise UsageError(f"--ckpt_path resumes the checkpoint's own model, so {', '.join(overrides)} would be ignored; "
                         f"drop them, or start a new run without --ckpt_path")


def run_cli(argv: Optional[list[str]] = None, run: bool = True) -> LightningCLI:
    """LightningCLI over every LightningModule / LightningDataModule (configs name their classes).
    run=False parses and instantiates without a subcommand (for tests and notebooks)."""
    import lightning as L

    check_config_files(argv)
    return WorkbenchCLI(
        model_class=L.LightningModule,
        datamodule_class=L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        trainer_defaults={"precision": default_precision()},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_class=OneLineParser,
        run=run,
    )

