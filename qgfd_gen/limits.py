"""What a small file may ask for: limits every reader checks against what a file *declares*, before allocating.

A 15-byte edge list can declare thirty million nodes, a 2 MB `.npz` 18 GiB of zeros, a 236 KB PNG a 9000 x 9000
canvas, and a YAML file of nested anchors ("billion laughs") an exponential tree. Each limit is stated here, named
in its refusal, and far above what the workbench's data sets need (CIFAR-10's 50,000 images are 150 MiB; a
benchmark graph has at most a few hundred nodes).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import UsageError

MAX_ARRAY_BYTES = 4 * 2**30  # one array of an .npz, as its header declares it
MAX_IMAGE_PIXELS = 4096 * 4096  # one image, as its header declares it
MAX_GRAPH_NODES = 10_000  # one graph of a graph file
MAX_YAML_ALIASES = 20  # `*alias` references in one YAML file (configs here use none; "billion laughs" needs 90)


def check_npz_sizes(path: Path, what: str, limit: Optional[int] = None) -> None:
    """Refuse an .npz any of whose arrays declares more than `limit` bytes, reading only the headers."""
    limit = MAX_ARRAY_BYTES if limit is None else limit
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(handle)
                size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if size > limit:
                    raise UsageError(f"{what} {str(path)!r}: array {member[:-4]!r} declares shape {shape} of {dtype} "
                                     f"({size / 2**30:.1f} GiB), over the {limit / 2**30:.0f} GiB an array may hold here")
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise UsageError(f"{what} {str(path)!r} is not a readable .npz file ({error})") from None


def check_image_pixels(width: int, height: int, path: Path, what: str, limit: Optional[int] = None) -> None:
    limit = MAX_IMAGE_PIXELS if limit is None else limit
    if width * height > limit:
        raise UsageError(f"{what}: {str(path)!r} is {width} x {height} pixels, over the {limit:,} an image may have "
                         f"here; scale it down first")


def check_graph_nodes(count: int, where: str, limit: Optional[int] = None) -> None:
    limit = MAX_GRAPH_NODES if limit is None else limit
    if count > limit:
        raise UsageError(f"{where}: {count:,} nodes, over the {limit:,} a graph may have here")


def check_yaml_aliases(text: str, where: str, limit: Optional[int] = None) -> None:
    """Refuse YAML with more than `limit` alias references, counted on the event stream (which expands nothing)."""
    limit = MAX_YAML_ALIASES if limit is None else limit
    import yaml

    aliases = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            aliases += isinstance(event, yaml.AliasEvent)
            if aliases > limit:
                raise UsageError(f"{where}: more than {limit} YAML aliases (*name); a config here needs none, and "
                                 f"nested aliases can expand without bound")
    except yaml.YAMLError:
        return  # the loader that follows names the syntax error


def load_yaml(path: Path, where: str):
    """A YAML file through the safe loader, after the alias check."""
    import yaml

    text = Path(path).read_text()
    check_yaml_aliases(text, where)
    return yaml.safe_load(text)
