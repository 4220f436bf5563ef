"""A study file read and checked before any training: the base config, the arms (named overrides and a
grid of them), the seeds, the equal budget per run and the evaluation; and the config of every run."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import itertools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from qgfd_gen.errors import UsageError
from qgfd_gen.io import file_digest
from qgfd_gen.limits import load_yaml

from .safety import check_class_paths, check_name, expected_base, set_raw
from .goal import StudyGoal, read_goal
from .sweep import expand_sweep, read_sweep

STUDY_KEYS = ("name", "base", "seeds", "budget", "arms", "grid", "sweep", "baseline", "trainer", "evaluate", "goal")
TOP_LEVEL = ("seed_everything", "trainer", "model", "data", "ckpt_path")


@dataclass
class Run:
    """One training run of one arm: where it lives and the config it trains with."""

    arm: str
    seed: int
    folder: Path
    config: dict[str, Any]


@dataclass
class StudyPlan:
    name: str
    base: Path
    seeds: list[int]
    budget: dict[str, float]
    arms: dict[str, dict[str, Any]]  # arm name -> {dotted key: value}
    baseline: str
    trainer: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)
    base_config: dict[str, Any] = field(default_factory=dict)
    goal: Optional[StudyGoal] = None
    sweep: dict[str, list[Any]] = field(default_factory=dict)  # one key swept across every named arm (say the lr)
    sweep_of: dict[str, tuple[str, Any]] = field(default_factory=dict)  # expanded arm -> (named arm, swept value)

    @property
    def sweeps_learning_rate(self) -> bool:
        """A sweep of the learning rate gets the sensitivity report; a sweep of any other key (the depth, say) the
        report of each arm against the baseline at each value."""
        return any(key.rsplit(".", 1)[-1] == "lr" for key in self.sweep)

    @property
    def evaluates(self) -> bool:
        """False for a study that only trains (`evaluate: false`): its rows hold losses and stability, no scores."""
        return self.evaluate is not None

    @property
    def kind(self) -> str:
        module, _, name = self.base_config["model"]["class_path"].rpartition(".")
        return getattr(importlib.import_module(module), name).kind

    def eval_options(self) -> list[str]:
        """The `evaluate` mapping as qgfd-eval options (keys as the options' names, lists as comma lists), for
        showing what the study evaluates."""
        argv: list[str] = []
        for key, value in (self.evaluate or {}).items():
            option = "--" + str(key).replace("_", "-")
            if value is True:
                argv.append(option)
            elif value is not False and value is not None:
                argv += [option, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        return argv

    def identity(self) -> dict[str, Any]:
        """What makes two studies the same study: a folder holding another one is refused, never mixed."""
        identity = {"base_sha256": file_digest(self.base), "seeds": self.seeds, "budget": self.budget,
                    "arms": self.arms, "trainer": self.trainer, "evaluate": self.evaluate}
        return {**identity, "sweep": self.sweep} if self.sweep else identity

    def runs(self, out: Path) -> list[Run]:
        """Seeds outermost: every arm gets its first seed before any arm gets its second, so an early look
        at an interrupted study already compares all arms."""
        return [Run(arm, seed, out / "runs" / arm / f"seed{seed}", self.run_config(arm, seed, out / "runs" / arm / f"seed{seed}"))
                for seed in self.seeds for arm in self.arms]

    def build_model(self, arm: str) -> Any:
        """The arm's model as its runs' config builds it (untrained): for checks before training and for timing."""
        model = self.run_config(arm, self.seeds[0], Path("."))["model"]
        check_class_paths({"model": model}, f"arm {arm!r}")
        module, _, name = model["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        expected_base(model["class_path"], cls, "model")
        return cls(**(model.get("init_args") or {}))

    def run_config(self, arm: str, seed: int, folder: Path) -> dict[str, Any]:
        config = copy.deepcopy(self.base_config)
        for key, value in {**{f"trainer.{k}": v for k, v in self.trainer.items()}, **self.arms[arm]}.items():
            set_key(config, key, value)
        config["seed_everything"] = seed
        trainer = config.setdefault("trainer", {})
        steps, minutes = self.budget.get("steps"), self.budget.get("minutes")
        trainer.update(max_steps=int(steps) if steps else -1, max_epochs=-1, default_root_dir=str(folder),
                       max_time=None if steps else f"00:00:{int(minutes):02d}:{round(60 * (minutes % 1)):02d}")
        trainer["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger",
                             "init_args": {"save_dir": str(folder), "name": "logs"}}
        every = max(1, int(steps) // 10) if steps else 100
        replaced = ("ModelCheckpoint", "SampleGridCallback", "TrainingDiagnostics", "StabilityMonitor",
                    "SampleQualityCallback")  # the study's own evaluation measures quality, once, at the end
        kept = [c for c in trainer.get("callbacks") or [] if c.get("class_path", "").rsplit(".", 1)[-1] not in replaced]
        trainer["callbacks"] = kept + [
            {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
             "init_args": {"dirpath": str(folder / "checkpoints"), "save_last": True, "every_n_train_steps": every}},
            {"class_path": "models.StabilityMonitor"},  # before TrainingDiagnostics, which drops non-finite gradients
            {"class_path": "models.TrainingDiagnostics"},
        ]
        return config


def read_study(path: str | Path) -> StudyPlan:
    """The study file, every override key checked against the base config and the classes it names."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"study file {str(path)!r} does not exist (see configs/studies/)")
    spec = load_yaml(path, f"study file {str(path)!r}") or {}
    if not isinstance(spec, dict):
        raise UsageError(f"{str(path)!r}: a study file is a mapping with keys {', '.join(STUDY_KEYS)}")
    unknown = sorted(set(spec) - set(STUDY_KEYS))
    if unknown:
        raise UsageError(f"{str(path)!r}: unknown key(s) {unknown}; valid: {', '.join(STUDY_KEYS)}")
    base = _relative(path, spec.get("base"), "base")
    base_config = load_yaml(base, f"base config {str(base)!r}")
    if not isinstance(base_config, dict):
        raise UsageError(f"base={str(base)!r} is not a training config (a mapping with model, data, trainer)")
    check_class_paths(base_config, f"base config {str(base)!r}")
    check_name(str(spec.get("name") or path.stem), "study name")
    named = _arms(spec.get("arms") or {}, spec.get("grid") or {})
    for arm, overrides in named.items():
        check_name(arm, "arm")
        raw = copy.deepcopy(base_config)
        for key, value in {**{f"trainer.{k}": v for k, v in (spec.get("trainer") or {}).items()}, **overrides}.items():
            set_raw(raw, str(key), value)
        check_class_paths(raw, f"arm {arm!r}")  # before set_key below imports any class it names
    sweep = read_sweep(spec.get("sweep"), path)
    arms, sweep_of = expand_sweep(named, sweep)
    if len(named) < 2:
        raise UsageError(f"{str(path)!r}: a study compares at least two arms; got {list(arms) or 'none'} "
                         f"(give `arms: {{name: {{key: value}}}}` and/or `grid: {{key: [values]}}`)")
    trainer = spec.get("trainer") or {}
    for overrides in [*arms.values(), {f"trainer.{k}": v for k, v in trainer.items()}]:
        for key, value in overrides.items():
            set_key(copy.deepcopy(base_config), key, value)  # raises on a bad key
    baseline = spec.get("baseline", next(iter(named)))
    if baseline not in named:
        raise UsageError(f"baseline={baseline!r} is not an arm; arms: {', '.join(named)}")
    if sweep:  # the baseline of a sweep is the named arm at the first swept value
        baseline = next(arm for arm, (base, _) in sweep_of.items() if base == baseline)
    evaluate = spec.get("evaluate", {})
    if evaluate is not False and not isinstance(evaluate or {}, dict):
        raise UsageError(f"{str(path)!r}: evaluate={evaluate!r}; give a mapping of qgfd-eval options, or false (train only)")
    return StudyPlan(name=str(spec.get("name") or path.stem), base=base, seeds=_seeds(spec.get("seeds", [0])),
                     budget=_budget(spec.get("budget")), arms=arms, baseline=baseline, trainer=trainer,
                     evaluate=None if evaluate is False else dict(evaluate or {}), base_config=base_config,
                     goal=read_goal(spec.get("goal"), named if sweep else arms, path), sweep=sweep, sweep_of=sweep_of)


def _relative(study: Path, value: Any, name: str) -> Path:
    if not value:
        raise UsageError(f"{str(study)!r}: `{name}` names no training config")
    for candidate in (Path(value), study.parent / value):
        if candidate.is_file():
            return candidate
    raise UsageError(f"{name}={value!r}: no such config (relative to the working folder or to {str(study.parent)!r})")


def _seeds(value: Any) -> list[int]:
    seeds = value if isinstance(value, list) else [value]
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"seeds={value!r}; need a list of distinct integers")
    return seeds


def _budget(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"steps", "minutes"}:
        raise UsageError(f"budget={value!r}; give one of `budget: {{steps: N}}` (optimiser steps per run) or "
                         f"`budget: {{minutes: M}}` (wall time per run)")
    (name, amount), = value.items()
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0 or (name == "steps" and amount != int(amount)):
        raise UsageError(f"budget.{name}={amount!r}; need a positive {'integer' if name == 'steps' else 'number'}")
    return {name: amount}


def _arms(named: Any, grid: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(named, dict) or not all(isinstance(v, dict) for v in named.values()):
        raise UsageError(f"arms={named!r}; need `arms: {{name: {{dotted.key: value}}}}`")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise UsageError(f"grid={grid!r}; need `grid: {{dotted.key: [value, ...]}}`")
    arms = {str(name): dict(overrides) for name, overrides in named.items()}
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)) if keys else []:
        name = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(keys, values))
        arms[name] = dict(zip(keys, values))
    return arms


def set_key(config: dict[str, Any], dotted: str, value: Any) -> None:
    """config[a][b][c] = value for 'a.b.c'. A key neither in the config nor a parameter of the class (or
    config dataclass) at that place is refused, naming the valid keys there."""
    parts = dotted.split(".")
    node: dict[str, Any] = config
    known: set[str] = set(TOP_LEVEL)
    hints: dict[str, Any] = {}
    for depth, part in enumerate(parts):
        valid = set(node) | known
        if part not in valid:
            where = ".".join(parts[:depth]) or "the top level"
            raise UsageError(f"override {dotted!r}: no key {part!r} at {where}; valid: {', '.join(sorted(valid))}")
        if depth == len(parts) - 1:
            node[part] = value
            return
        if node.get(part) is None:
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            raise UsageError(f"override {dotted!r}: {'.'.join(parts[:depth + 1])} is {child!r}, not a mapping")
        known, hints = _keys_inside(part, node, depth, hints)
        node = child


def _keys_inside(part: str, parent: dict[str, Any], depth: int, hints: dict[str, Any]) -> tuple[set[str], dict[str, Any]]:
    """The keys valid inside parent[part] besides those it holds, with their type hints: the Trainer's
    parameters, a class's parameters under init_args, a config dataclass's fields."""
    if depth == 0 and part == "trainer":
        import lightning as L

        return _parameters(L.Trainer.__init__)
    if depth == 0 and part in ("model", "data"):
        return {"class_path", "init_args", "dict_kwargs"}, {}
    if part == "init_args" and isinstance(parent.get("class_path"), str):
        module, _, name = parent["class_path"].rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            raise UsageError(f"class_path {parent['class_path']!r} names no importable class") from None
        return _parameters(cls.__init__)
    cls = _dataclass_of(hints.get(part))
    if cls is not None:
        return {f.name for f in dataclasses.fields(cls)}, typing.get_type_hints(cls)
    return set(), {}


def _parameters(function: Any) -> tuple[set[str], dict[str, Any]]:
    names = {n for n, p in inspect.signature(function).parameters.items()
             if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not resolve: the names are still known
        hints = {}
    return names, hints


def _dataclass_of(annotation: Any) -> Optional[type]:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None
