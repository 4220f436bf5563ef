"""The provenance lines of a study report: which network scored the images, which code trained the runs, and
with how many torch threads (step times compare only at the same count)."""

from __future__ import annotations

from typing import Any


def network_note(rows: list[dict[str, Any]]) -> list[str]:
    """Which network the image scores come from, and the FID label when samples were fewer than the field's."""
    networks = sorted({r["fid_network"] for r in rows if r.get("fid_network")})
    if not networks:
        return []
    labels = sorted({r["fid_label"] for r in rows if r.get("fid_label")})
    references = sorted({r["reference_images"] for r in rows if r.get("reference_images")})
    label = (f" FID here is {', '.join(labels)}: from fewer than 10,000 samples, biased upwards against published "
             f"FID-50k; KID (unbiased) beside it." if labels else "")
    return [f"Image scores: network {', '.join(f'`{n}`' for n in networks)}, "
            f"{', '.join(map(str, references)) or 'unknown'} reference images.{label}", ""]


def code_note(rows: list[dict[str, Any]]) -> list[str]:
    """Which code trained the runs (each run's `code`: the commits of its training attempts)."""
    runs: dict[str, list[str]] = {}
    for row in rows:
        runs.setdefault(row.get("code") or "not recorded", []).append(f"{row['arm']} seed {row['seed']}")
    old = (" Runs without a recorded version predate it, and with it the pairing of arms whose networks differ in "
           "shape (as RRWP's do): such a pair shares its seed number, not its batches or training noise."
           if "not recorded" in runs else "")
    if len(runs) == 1:
        return [f"Trained by code `{next(iter(runs))}`.{old}", ""]
    return ["Trained by more than one version of the code: "
            + "; ".join(f"`{code}`: {', '.join(names)}" for code, names in runs.items()) + f".{old}", ""]


def threads_note(rows: list[dict[str, Any]]) -> str:
    """How many torch threads trained the runs: step times compare only at the same count."""
    counts: dict[int, list[str]] = {}
    for row in rows:
        if row.get("torch_threads"):
            counts.setdefault(int(row["torch_threads"]), []).append(f"{row['arm']} seed {row['seed']}")
    unrecorded = " (the rest predate the record)" if counts and any(not r.get("torch_threads") for r in rows) else ""
    if len(counts) == 1:
        (count, names), = counts.items()
        return f" Runs trained with {count} torch thread{'s' if count > 1 else ''}: {len(names)} of {len(rows)}{unrecorded}."
    if counts:
        return (" Runs trained at different torch thread counts, so their step times compare only within a count: "
                + "; ".join(f"{c}: {', '.join(n)}" for c, n in sorted(counts.items())) + f"{unrecorded}.")
    return ""
