"""The layout's rules, checked on the source: imports go one way (down the layers in README's Architecture
section), no module over 300 lines, no function over 60 lines."""

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("qgfd_gen", "datamodules", "models", "sampling")
# longest matching prefix wins; a lower number is a lower layer
LAYERS = {
    "qgfd_gen": 0,  # the QGFD core and shared infrastructure
    "datamodules": 1,  # data, and molecules as graphs
    "models.unet": 1, "models.graph_transformer": 1,  # networks
    "sampling.metrics": 1, "sampling.grids": 1, "sampling.graph_kernels": 1,  # measures and pictures of samples: tensors and SMILES in
    "models.discrete_diffusion": 2, "models.gaussian_diffusion": 2, "models.graph_diffusion": 2,  # processes
    "models.adaptive_sampler": 2, "models.early_exit": 2,
    "models": 3,  # LightningModules, callbacks, loading
    "sampling": 4, "qgfd_gen.commands": 4, "qgfd_gen.__main__": 4,  # commands
}


def layer(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)
    return LAYERS[best]


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) of every project import, function-local ones included; relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out += [(node.lineno, f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base)
                    for alias in node.names]
    return [(line, name) for line, name in out if name.split(".")[0] in PACKAGES]


def test_every_import_goes_down_or_sideways():
    upward = []
    for module, path in modules().items():
        for line, target in imported(module, path):
            if layer(target) > layer(module):
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target} (layer {layer(target)} > {layer(module)})")
    assert not upward, "\n".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path):
    assert layer("qgfd_gen.operator") == 0 and layer("qgfd_gen.commands.bench") == 4
    assert layer("models.image_diffusion") == 3 and layer("models.unet") == 1 and layer("sampling.evaluate") == 4
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from models import ImageDiffusion\n")
    assert imported("qgfd_gen.x", source) == [(2, "models")]  # function-local imports count too


@pytest.mark.parametrize("module", sorted(modules()))
def test_modules_and_functions_stay_small(module):
    path = modules()[module]
    tree = ast.parse(path.read_text())
    lines = len(path.read_text().splitlines())
    assert lines <= 300, f"{path} has {lines} lines; split it by concern"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert not long, f"{path}: {', '.join(long)}"
