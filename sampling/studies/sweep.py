"""A study's `sweep:`: one key (a learning rate, say) swept across every named arm, each arm at each value
becoming an arm of its own (`vanilla` at lr 0.001 runs as `vanilla_lr0.001`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgfd_gen.errors import UsageError


def read_sweep(value: Any, path: Path) -> dict[str, list[Any]]:
    if value is None:
        return {}
    if not (isinstance(value, dict) and len(value) == 1 and all(isinstance(v, list) and len(v) >= 2 and
                                                                all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                                    for x in v) for v in value.values())):
        raise UsageError(f"{str(path)!r}: sweep={value!r}; give one dotted key and at least two numbers, e.g. "
                         f"`sweep: {{model.init_args.optimizer.lr: [1.0e-4, 1.0e-3, 1.0e-2]}}`")
    return {str(key): list(values) for key, values in value.items()}


def expand_sweep(named: dict[str, dict[str, Any]], sweep: dict[str, list[Any]]
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, Any]]]:
    """Every named arm at every swept value: arm `vanilla` at lr 0.001 is `vanilla_lr0.001`, its overrides the
    arm's plus the swept key. Without a sweep, the named arms as they are."""
    if not sweep:
        return named, {}
    (key, values), = sweep.items()
    short = key.rsplit(".", 1)[-1]
    arms, sweep_of = {}, {}
    for arm, overrides in named.items():
        for value in values:
            name = f"{arm}_{short}{value:g}"
            arms[name], sweep_of[name] = {**overrides, key: value}, (arm, value)
    return arms, sweep_of
