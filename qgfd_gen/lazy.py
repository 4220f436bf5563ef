"""Package attributes imported on first use (PEP 562), so that `import models` or `from qgfd_gen.errors import
...` costs nothing until a name is used: a command parses its arguments, and answers `--help`, before torch,
Lightning or diffusers load."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for a package whose public `names` (name -> submodule, relative to the package)
    load on first access.

    Example:
        >>> getattr_, dir_ = lazy_exports("qgfd_gen", {"qgfd_attention": ".operator"})
        >>> getattr_("qgfd_attention").__name__
        'qgfd_attention'
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name], package), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
