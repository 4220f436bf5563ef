"""MOSES's scorecard (Polykovskiy et al. 2020), computed with RDKit as the paper and its reference code define it,
so a run here can be set beside the published tables:

- `filters`: the share of valid molecules passing MOSES's filters: no ring of 8 or more atoms, no charged atom,
  only C, N, S, O, F, Cl, Br and H, and no match of the 22 medicinal-chemistry filters (MCF, below) or of the PAINS
  substructures (RDKit's FilterCatalog PAINS A, B and C: the same 480 patterns of Baell and Holloway 2010 that
  MOSES ships), matched on the molecule with explicit hydrogens; `filter_failures` says how many fail each filter;
- `intdiv1`, `intdiv2`: 1 - mean_i (mean_j T_ij^p)^(1/p) over all ordered pairs of the valid samples (self-pairs
  included, as MOSES does), T the Tanimoto similarity of Morgan fingerprints (radius 2, 1,024 bits), p = 1 and 2;
- `unique_1k`, `unique_10k`: the share of distinct canonical SMILES among the first 1,000 / 10,000 valid samples
  (null when there are fewer: MOSES computes it on fewer with a warning; here it is said plainly);
- against each reference set (`test`: MOSES's Test, `testsf`: its scaffold split TestSF):
  `snn_<ref>` the mean over valid samples of the Tanimoto similarity to the nearest reference molecule;
  `frag_<ref>` the cosine similarity of BRICS fragment counts; `scaf_<ref>` the cosine similarity of Bemis-Murcko
  scaffold counts (scaffolds with fewer than two rings are not counted, as in MOSES's code);
  `logp_w1_<ref>`, `sa_w1_<ref>`, `qed_w1_<ref>`, `weight_w1_<ref>`: the Wasserstein-1 distance between the
  property's distributions over the valid samples and the reference (the paper's definition; its code's table
  uses a Frechet distance of mean and variance instead). SA is RDKit's Contrib SA score (Ertl and Schuffenhauer),
  shipped in the RDKit wheel.

A reference's statistics (`MosesReference`) are computed once and cached by the caller: MOSES's Test set is 176,074
molecules. Every metric is over the valid samples; a metric that cannot be defined (no valid sample, no scaffold)
is None with a note in `notes`.

Example:
    >>> reference = MosesReference(["c1ccccc1CCO", "CCN(CC)C(=O)c1ccccc1", "O=C(O)c1ccccc1"])
    >>> scores = moses_scores(["c1ccccc1CCO", "CCN(CC)C(=O)c1ccccc1", "O=C(O)c1ccccc1"], {"test": reference})
    >>> round(scores["snn_test"], 6), round(scores["frag_test"], 6), scores["filters"]
    (1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from functools import lru_cache
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import BRICS, Crippen, Descriptors, QED, rdFingerprintGenerator
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams
from rdkit.Chem.Scaffolds import MurckoScaffold

from datamodules.chemistry import sample_mol

FINGERPRINT_BITS = 1024
ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
UNIQUE_AT = {"unique_1k": 1000, "unique_10k": 10000}
PROPERTIES = ("logp", "sa", "qed", "weight")
# MOSES's medicinal-chemistry filters (its mcf.csv: name, SMARTS), data carried over as published
MCF_SMARTS = (
    ("AMINAL", "[#7]-&!@[#6&!H0&!H1]-&!@[#7]"), ("MICHAEL1", "[#6]=&!@[#6]-[#6]#[#7]"),
    ("ACETAL", "[#6&!H0](-&!@[#8])-&!@[#8]"), ("DISULFIDE", "[#16]~[#16]"), ("ISOCYANATE", "[#6]-[#7]=[#6]=[#8]"),
    ("IMINE", "[#6](=&!@[#7&!H0])-&!@[#6,#7,#8,#16]"), ("HYDRAZINE", "[#6]~&!@[#7]~&!@[#7]~&!@[#6]"),
    ("ALDEHYDE", "[#6&!H0]=[#8]"), ("AZO", "[#7]=&!@[#7]"), ("AZIRIDINE", "[#6]1-[#7]-[#6]-1"),
    ("EPOXIDE", "[#6]1-[#8]-[#6]-1"), (">2 Br", "[#35].[#35].[#35]"), (">3 Cl", "[#17].[#17].[#17].[#17]"),
    (">6 F", "[#9].[#9].[#9].[#9].[#9].[#9].[#9]"), ("AZIDE", "[#7]~&!@[#7]~&!@[#7]"),
    ("MICHAEL2", "[#6]=&!@[#6]-[#16](=[#8])=[#8]"), ("MICHAEL6", "[#6]=&!@[#6&!H0]-&!@[#6](=[#8])-&!@[#7]"),
    ("FURAN", "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#8]-1"), ("THIOPHENE", "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#16]-1"),
    ("ALKYLHALIDE", "[H]C([H])([#6])[F,Cl,Br,I]"),
    ("ANILINE", "[H][#7]([H])-[#6]-1=[#6]-[#6]=[#6]-[#6]=[#6]-1"), ("ARO_HALO", "[#17,#35,#53]-c(:*):[!#1!#6]:*"),
)


@lru_cache(maxsize=1)
def _mcf_patterns() -> tuple:
    return tuple(Chem.MolFromSmarts(smarts) for _, smarts in MCF_SMARTS)


@lru_cache(maxsize=1)
def _pains_catalog() -> FilterCatalog:
    params = FilterCatalogParams()
    params.AddCatalog(FilterCatalogParams.FilterCatalogs.PAINS)
    return FilterCatalog(params)


@lru_cache(maxsize=1)
def _sa_scorer():
    """RDKit's Contrib SA score module (shipped in the wheel, not importable as a package)."""
    from rdkit.Chem import RDConfig

    folder = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if not os.path.isfile(os.path.join(folder, "sascorer.py")):
        raise FileNotFoundError(f"RDKit's SA score (Contrib/SA_Score/sascorer.py) is missing from {folder}; the SA "
                                f"column needs an RDKit wheel that ships Contrib")
    if folder not in sys.path:
        sys.path.append(folder)
    import sascorer  # noqa: E402  (RDKit Contrib)

    return sascorer


def passes_filters(mol: Optional[Chem.Mol]) -> bool:
    """MOSES's filters for one molecule (see the module docstring); an invalid molecule fails. Stops at the first
    filter failed (the rules are read lazily), so the every-row Filters share stays cheap."""
    return mol is not None and next(_failed_filters(mol), None) is None


def failed_filters(mol: Chem.Mol) -> list[str]:
    """Every one of MOSES's filters a valid molecule fails, by name: what a low `filters` share is made of."""
    return list(_failed_filters(mol))


def _failed_filters(mol: Chem.Mol) -> Iterator[str]:
    """MOSES's filters, written once: the name of each one the molecule fails, cheapest first; a caller that needs
    only the first failure stops the generator there."""
    if any(len(ring) >= 8 for ring in mol.GetRingInfo().AtomRings()):
        yield "ring of 8+ atoms"
    if any(atom.GetFormalCharge() != 0 for atom in mol.GetAtoms()):
        yield "charged atom"
    if any(atom.GetSymbol() not in ALLOWED_ATOMS for atom in mol.GetAtoms()):
        yield "atom outside C N S O F Cl Br H"
    with_h = Chem.AddHs(mol)
    for (name, _), pattern in zip(MCF_SMARTS, _mcf_patterns()):
        if with_h.HasSubstructMatch(pattern):
            yield f"MCF {name}"
    if _pains_catalog().HasMatch(with_h):
        yield "PAINS"


def filter_failures(mols: Sequence[Chem.Mol]) -> dict[str, Any]:
    """How many valid molecules fail MOSES's filters, and how many fail each one (a molecule may fail several),
    most common first.

    Example:
        >>> mols = [Chem.MolFromSmiles(s) for s in ("C1CCCCCCC1", "CC=O", "CCO")]
        >>> filter_failures(mols)
        {'valid': 3, 'failing': 2, 'by_filter': {'ring of 8+ atoms': 1, 'MCF ALDEHYDE': 1}}
    """
    counts: Counter = Counter()
    failing = 0
    for mol in mols:
        failed = failed_filters(mol)
        failing += bool(failed)
        counts.update(failed)
    return {"valid": len(mols), "failing": failing, "by_filter": dict(counts.most_common())}


def fingerprint_matrix(mols: Sequence[Chem.Mol]) -> torch.Tensor:
    """Morgan fingerprints (radius 2, 1,024 bits) as a [n, 1024] 0/1 float32 matrix."""
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FINGERPRINT_BITS)
    rows = np.zeros((len(mols), FINGERPRINT_BITS), dtype=np.float32)
    for i, mol in enumerate(mols):
        rows[i] = generator.GetFingerprintAsNumPy(mol)
    return torch.from_numpy(rows)


def _tanimoto_blocks(left: torch.Tensor, right: torch.Tensor, block: int = 4096):
    """Yields (row slice, Tanimoto block [rows, len(right)]) of every left fingerprint against every right one
    (two empty fingerprints count as similarity 1, as MOSES does)."""
    right_counts = right.sum(1)
    for start in range(0, len(left), block):
        rows = left[start:start + block]
        shared = rows @ right.T
        union = rows.sum(1, keepdim=True) + right_counts[None] - shared
        yield slice(start, start + len(rows)), torch.where(union > 0, shared / union.clamp_min(1), torch.ones_like(shared))


def nearest_neighbour_similarity(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """SNN: the mean over samples of the largest Tanimoto similarity to a reference fingerprint."""
    best = torch.zeros(len(samples))
    for start in range(0, len(reference), 32768):
        for rows, similarity in _tanimoto_blocks(samples, reference[start:start + 32768]):
            best[rows] = torch.maximum(best[rows], similarity.max(1).values)
    return float(best.double().mean())


def internal_diversity(fingerprints: torch.Tensor, p: int = 1) -> float:
    """IntDiv_p = 1 - mean_i (mean_j T_ij^p)^(1/p) over all ordered pairs, self-pairs included."""
    per_sample = torch.zeros(len(fingerprints), dtype=torch.float64)
    for rows, similarity in _tanimoto_blocks(fingerprints, fingerprints):
        per_sample[rows] = similarity.double().pow(p).mean(1).pow(1.0 / p)
    return float(1 - per_sample.mean())


def fragment_counts(mols: Sequence[Chem.Mol]) -> Counter:
    """BRICS fragments (canonical SMILES with their dummy atoms) counted over the molecules."""
    counts: Counter = Counter()
    for mol in mols:
        counts.update(Chem.MolToSmiles(BRICS.BreakBRICSBonds(mol)).split("."))
    return counts


def scaffold_counts(mols: Sequence[Chem.Mol], min_rings: int = 2) -> Counter:
    """Bemis-Murcko scaffolds (canonical SMILES) with at least `min_rings` rings, counted over the molecules."""
    counts: Counter = Counter()
    for mol in mols:
        try:
            scaffold = MurckoScaffold.GetScaffoldForMol(mol)
        except (ValueError, RuntimeError):
            continue
        smiles = Chem.MolToSmiles(scaffold)
        if smiles and scaffold.GetRingInfo().NumRings() >= min_rings:
            counts[smiles] += 1
    return counts


def cosine_similarity(left: Counter, right: Counter) -> Optional[float]:
    """Cosine similarity of two count vectors keyed by name (a missing name counts 0); None if either is empty."""
    if not left or not right:
        return None
    dot = sum(count * right.get(name, 0) for name, count in left.items())
    norms = math.sqrt(sum(c * c for c in left.values())) * math.sqrt(sum(c * c for c in right.values()))
    return dot / norms


def property_values(mols: Sequence[Chem.Mol]) -> dict[str, np.ndarray]:
    """logP (Crippen), SA (RDKit Contrib), QED and molecular weight of each molecule."""
    sascorer = _sa_scorer()
    return {"logp": np.array([Crippen.MolLogP(m) for m in mols], dtype=np.float64),
            "sa": np.array([sascorer.calculateScore(m) for m in mols], dtype=np.float64),
            "qed": np.array([QED.qed(m) for m in mols], dtype=np.float64),
            "weight": np.array([Descriptors.MolWt(m) for m in mols], dtype=np.float64)}


def valid_mols(smiles: Sequence[Optional[str]]) -> list[Chem.Mol]:
    """The valid samples' molecules, by the workbench's one rule (datamodules.chemistry.sample_mol: a SMILES over
    MAX_SMILES_CHARS is invalid without reaching RDKit); RDKit's own complaints silenced, invalid samples are counted."""
    RDLogger.DisableLog("rdApp.*")
    try:
        mols = [sample_mol(s) for s in smiles]
    finally:
        RDLogger.EnableLog("rdApp.*")
    return [m for m in mols if m is not None]


def sample_diversity(samples: Sequence[Optional[str]]) -> dict[str, Optional[float]]:
    """IntDiv1 and IntDiv2 of the valid samples (None with none), and the share passing MOSES's filters: cheap
    (no reference), so every molecule row and training's validation carry them."""
    mols = valid_mols(samples)
    if not mols:
        return {"intdiv1": None, "intdiv2": None, "filters": None}
    fingerprints = fingerprint_matrix(mols)
    return {"intdiv1": internal_diversity(fingerprints, 1), "intdiv2": internal_diversity(fingerprints, 2),
            "filters": sum(passes_filters(m) for m in mols) / len(mols)}


class MosesReference:
    """A reference set's statistics for SNN, Frag, Scaf and the property distances (MOSES's Test or TestSF),
    computed once from its SMILES (invalid ones skipped).

    Args:
        smiles: the reference set.
    """

    def __init__(self, smiles: Sequence[str]):
        mols = valid_mols(smiles)
        if not mols:
            raise ValueError(f"a MOSES reference needs valid molecules; none of the {len(smiles)} SMILES parsed")
        self.size = len(mols)
        self.fingerprints = fingerprint_matrix(mols)
        self.fragments = fragment_counts(mols)
        self.scaffolds = scaffold_counts(mols)
        self.properties = property_values(mols)

    def arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no objects), for a cache file that loads without pickle."""
        return {"size": np.array(self.size), "fingerprints": np.packbits(self.fingerprints.numpy().astype(np.uint8), axis=1),
                "fragment_names": np.array(list(self.fragments), dtype=str),
                "fragment_counts": np.array(list(self.fragments.values()), dtype=np.int64),
                "scaffold_names": np.array(list(self.scaffolds), dtype=str),
                "scaffold_counts": np.array(list(self.scaffolds.values()), dtype=np.int64),
                **{f"property_{name}": values for name, values in self.properties.items()}}

    @classmethod
    def from_arrays(cls, arrays: Any) -> "MosesReference":
        reference = cls.__new__(cls)
        reference.size = int(arrays["size"])
        bits = np.unpackbits(arrays["fingerprints"], axis=1)[:, :FINGERPRINT_BITS]
        reference.fingerprints = torch.from_numpy(bits.astype(np.float32))
        reference.fragments = Counter(dict(zip(arrays["fragment_names"].tolist(), arrays["fragment_counts"].tolist())))
        reference.scaffolds = Counter(dict(zip(arrays["scaffold_names"].tolist(), arrays["scaffold_counts"].tolist())))
        reference.properties = {name: np.asarray(arrays[f"property_{name}"], dtype=np.float64) for name in PROPERTIES}
        return reference


def moses_scores(samples: Sequence[Optional[str]], references: dict[str, MosesReference]) -> dict[str, Any]:
    """MOSES's metrics of one sample list (see the module docstring), each reference's columns suffixed with its
    name (`snn_test`, `frag_testsf`, ...), `notes` naming every metric left None and why."""
    from scipy.stats import wasserstein_distance

    mols = valid_mols(samples)
    scores: dict[str, Any] = {}
    notes: dict[str, str] = {}
    canonical = [Chem.MolToSmiles(m) for m in mols]
    for name, k in UNIQUE_AT.items():
        scores[name] = len(set(canonical[:k])) / k if len(canonical) >= k else None
        if scores[name] is None:
            notes[name] = f"undefined: needs {k} valid samples, got {len(canonical)}"
    if not mols:
        for name in ("filters", "intdiv1", "intdiv2"):
            scores[name] = None
            notes[name] = "undefined: no valid sample"
        for ref in references:
            for column in ("snn", "frag", "scaf", *(f"{p}_w1" for p in PROPERTIES)):
                scores[f"{column}_{ref}"] = None
                notes[f"{column}_{ref}"] = "undefined: no valid sample"
        return {**scores, "notes": notes}
    failures = filter_failures(mols)
    scores["filters"] = (len(mols) - failures["failing"]) / len(mols)
    scores["filter_failures"] = failures
    fingerprints = fingerprint_matrix(mols)
    scores["intdiv1"], scores["intdiv2"] = internal_diversity(fingerprints, 1), internal_diversity(fingerprints, 2)
    fragments, scaffolds, properties = fragment_counts(mols), scaffold_counts(mols), property_values(mols)
    for ref, reference in references.items():
        scores[f"snn_{ref}"] = nearest_neighbour_similarity(fingerprints, reference.fingerprints)
        scores[f"frag_{ref}"] = cosine_similarity(fragments, reference.fragments)
        scores[f"scaf_{ref}"] = cosine_similarity(scaffolds, reference.scaffolds)
        if scores[f"scaf_{ref}"] is None:
            notes[f"scaf_{ref}"] = "undefined: no scaffold with two or more rings among the samples"
        for name in PROPERTIES:
            scores[f"{name}_w1_{ref}"] = float(wasserstein_distance(properties[name], reference.properties[name]))
    return {**scores, "notes": notes}
