"""What a study file may ask for, checked before anything it names is imported or called: study files are what
researchers share, so a file from a stranger must not run code or write outside its folder.

- Every `class_path` in the configs a study builds (its base config and each arm's overrides) names one of the
  project's own classes, or one of Lightning's callbacks and loggers: the string is checked before any import; the
  class, once imported, must be a subclass of what its place expects.
- Arm and study names become folder names: letters, digits and `_ + = , - .`, no leading dot, no `..`, so no path
  made from them leaves the study folder.
"""

from __future__ import annotations

import re
from typing import Any

from qgfd_gen.errors import UsageError

ALLOWED_PREFIXES = {
    "model": ("models.",),
    "data": ("datamodules.",),
    "callbacks": ("models.", "lightning.pytorch.callbacks."),
    "logger": ("lightning.pytorch.loggers.",),
}
NAME = re.compile(r"^[A-Za-z0-9_+=,-][A-Za-z0-9_.+=,-]*$")
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def check_name(name: str, what: str) -> str:
    """A name that becomes a folder: refused, naming it, unless it matches the plain pattern."""
    if not NAME.match(name) or ".." in name:
        raise UsageError(f"{what} {name!r}: use letters, digits and _ + = , - . (no leading dot, no '..', no '/'), "
                         "since it names a folder")
    return name


def _check_one(class_path: Any, place: str, where: str) -> None:
    allowed = ALLOWED_PREFIXES[place]
    if not isinstance(class_path, str) or not DOTTED.match(class_path) or not class_path.startswith(allowed):
        raise UsageError(f"{where}: {place} class_path {class_path!r} is refused: a study may only name the "
                         f"project's classes here ({' or '.join(p + '*' for p in allowed)}); nothing was imported")


def check_class_paths(config: dict[str, Any], where: str) -> None:
    """Every class_path of a training config (model, data, trainer callbacks and logger), by string, before any
    import."""
    for place in ("model", "data"):
        node = config.get(place)
        if isinstance(node, dict) and "class_path" in node:
            _check_one(node["class_path"], place, where)
    trainer = config.get("trainer") or {}
    callbacks = trainer.get("callbacks") or []
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        if isinstance(callback, dict) and "class_path" in callback:
            _check_one(callback["class_path"], "callbacks", where)
    loggers = trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if isinstance(logger, dict) and "class_path" in logger:
            _check_one(logger["class_path"], "logger", where)


def set_raw(config: dict[str, Any], dotted: str, value: Any) -> None:
    """config[a][b][c] = value for 'a.b.c', creating mappings on the way: an override applied without any check or
    import, so that the result can be checked by string first."""
    node = config
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def expected_base(class_path: str, cls: type, place: str) -> None:
    """After the import: the class is what its place expects (a LightningModule for the model)."""
    import lightning as L

    base = {"model": L.LightningModule, "data": L.LightningDataModule}[place]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UsageError(f"{place} class_path {class_path!r} is not a {base.__name__}; refused")
