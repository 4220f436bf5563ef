"""The layout's rules, checked on the source. Every folder sits on one layer (README's Architecture section);
imports go down the layers or sideways within one, no two rooms (folders) import each other, every console
entry point lives in the commands folder, no module is over 300 lines and no function over 60."""

import ast
import functools
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("qgfd_gen", "datamodules", "models", "sampling")
COMMANDS = "sampling/commands"
# folder -> layer; a module sits on its folder's layer (a lower number is a lower layer)
FOLDERS = {
    "qgfd_gen": 0,  # core: the operator, transitions, attention, processor; infrastructure
    "datamodules": 1,  # data: data modules, chemistry
    "models/networks": 1,  # U-Net, graph transformer
    "models/measures": 1,  # metrics, graph kernels, grids
    "models/processes": 2,  # Gaussian and discrete chains, samplers, early exit
    "models/training": 3,  # LightningModules, callbacks, loading, export
    "models": 3,  # the names configs use, re-exported from training
    "sampling": 4,  # after training: sweeps, results folders, several processes, evaluations
    "sampling/studies": 4,  # the study engine: plan, runs, jobs, table, report
    "sampling/benchmarks": 4,  # the benchmark suites
    COMMANDS: 5,  # every console entry point
}


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def folder_of(module: str) -> str:
    """The folder (room) a module lives in: its package's path."""
    path = modules().get(module)
    if path is None:  # an imported name that is not a module: its package
        return folder_of(module.rpartition(".")[0])
    return path.parent.relative_to(ROOT).as_posix()


def layer(module: str) -> int:
    return FOLDERS[folder_of(module)]


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


def test_every_folder_has_a_layer():
    folders = {path.parent.relative_to(ROOT).as_posix() for path in modules().values()}
    assert folders <= set(FOLDERS), f"give these folders a layer in FOLDERS: {sorted(folders - set(FOLDERS))}"


def test_every_import_goes_down_or_sideways():
    upward = []
    for module, path in modules().items():
        for line, target in imported(module, path):
            if layer(target) > layer(module):
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target} (layer {layer(target)} > {layer(module)})")
    assert not upward, "\n".join(upward)


def room_edges(top_level: bool) -> set[tuple[str, str]]:
    edges = set()
    for module, path in modules().items():
        for _, target in imported(module, path):
            a, b = folder_of(module), folder_of(target)
            if top_level:
                a, b = a.split("/")[0], b.split("/")[0]
            if a != b and not b.startswith(a + "/"):  # a package may re-export from its own subfolders
                edges.add((a, b))
    return edges


def module_cycles() -> list[list[str]]:
    """Every circle of module imports (function-local imports count): the strongly connected components of the
    import graph with more than one module, or a module importing itself."""
    graph = {module: sorted({target if target in modules() else folder_module(target) for _, target in
                             imported(module, path)} - {None}) for module, path in modules().items()}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def folder_module(name: str):
    """The module an imported name lives in (`models.ImageDiffusion` -> `models`), or None outside the project."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def test_no_module_imports_itself_through_others():
    assert not module_cycles(), f"import circles: {module_cycles()}"


@pytest.mark.parametrize("top_level", [False, True], ids=["folders", "top-folders"])
def test_no_two_rooms_import_each_other(top_level):
    edges = room_edges(top_level)
    both_ways = sorted({tuple(sorted(edge)) for edge in edges if edge[::-1] in edges})
    assert not both_ways, f"these rooms import each other: {both_ways}"


def test_console_entry_points_live_in_the_commands_folder():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    outside = {name: target for name, target in scripts.items() if folder_of(target.split(":")[0]) != COMMANDS}
    assert not outside, f"console scripts outside {COMMANDS}: {outside}"
    mains = [str(path.relative_to(ROOT)) for module, path in modules().items()
             if "__main__" in path.read_text() and path.parent.relative_to(ROOT).as_posix() != COMMANDS]
    assert not mains, f"runnable modules outside {COMMANDS}: {mains}"


def test_the_rules_catch_an_upward_import(tmp_path):
    assert layer("qgfd_gen.operator") == 0 and layer("sampling.commands.bench") == 5
    assert layer("models.training.image_diffusion") == 3 and layer("models.networks.unet") == 1
    assert layer("models.ImageDiffusion") == 3 and layer("sampling.sweep") == 4
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from models import ImageDiffusion\n")
    assert imported("qgfd_gen.x", source) == [(2, "models")]  # function-local imports count too
    assert layer("models") > layer("qgfd_gen.x")


def docstring_lines(tree: ast.AST) -> set[int]:
    """The line numbers of every module, class and function docstring: structured docstrings (arguments,
    returns, raises, an example) are documentation, not size."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


@pytest.mark.parametrize("module", sorted(modules()))
def test_modules_and_functions_stay_small(module):
    """At most 300 lines a module and 60 a function, docstrings not counted."""
    path = modules()[module]
    tree = ast.parse(path.read_text())
    docs = docstring_lines(tree)
    lines = len(path.read_text().splitlines()) - len(docs)
    assert lines <= 300, f"{path} has {lines} lines besides its docstrings; split it by concern"
    long = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            size = node.end_lineno - node.lineno + 1 - len(docs & set(range(node.lineno, node.end_lineno + 1)))
            if size > 60:
                long.append(f"{node.name} ({size} lines besides its docstring)")
    assert not long, f"{path}: {', '.join(long)}"


def covered_elsewhere() -> dict[str, str]:
    """module -> the test file whose COVERS list names it."""
    named = {}
    for test in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.parse(test.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COVERS" for t in node.targets):
                for element in node.value.elts:
                    named[element.value] = str(test.relative_to(ROOT))
    return named


def test_tests_mirror_the_source_folders():
    """Every source module has tests/<its folder>/test_<its name>.py, or a test module that names it in COVERS;
    every name in a COVERS list is a real module."""
    named = covered_elsewhere()
    unknown = sorted(set(named) - set(modules()))
    assert not unknown, f"COVERS names modules that do not exist: {unknown}"
    missing = []
    for module, path in modules().items():
        if path.name == "__init__.py":
            continue
        mirror = ROOT / "tests" / path.parent.relative_to(ROOT) / f"test_{path.name}"
        if not mirror.exists() and module not in named:
            missing.append(f"{module}: write {mirror.relative_to(ROOT)} or name it in a test module's COVERS")
    assert not missing, "\n".join(missing)


def test_test_modules_have_unique_names():
    """Test modules share one namespace (no __init__.py in tests/): two of one name in different folders would stop
    the whole suite at collection, so a mirror that would repeat a name takes another and says so in COVERS."""
    names: dict[str, list[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert not {name: paths for name, paths in names.items() if len(paths) > 1}
