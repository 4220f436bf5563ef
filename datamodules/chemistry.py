"""Molecules as graphs and back, with RDKit, as the field does it: heavy atoms only, kekulized, bonds
single / double / triple. A charged atom is its own vocabulary entry ("N+", "O-"), so charges survive
the round trip; hydrogens are implicit and come back from RDKit's default valences on sanitization.

A graph is (atoms [n] long, bonds [n, n] long), bond 0 = none, 1 single, 2 double, 3 triple.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import torch
from rdkit import Chem, RDLogger
from torch import Tensor

RDLogger.DisableLog("rdApp.*")  # sanitization failures are counted, not printed one by one

# longer than any molecule a vocabulary here holds (38 heavy atoms): counted invalid without asking RDKit,
# which takes minutes on a 100,000-atom string and can crash on it
MAX_SMILES_CHARS = 512

BOND_TYPES = (None, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE)
BOND_INDEX = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}
NUM_BOND_TYPES = len(BOND_TYPES)  # including "no bond"

QM9_ATOMS = ("C", "N", "O", "F")
QM9_MAX_ATOMS = 9
ZINC_ATOMS = ("C", "N", "O", "F", "P", "S", "Cl", "Br", "I", "N+", "N-", "O-", "S+", "S-", "C-", "P+")
ZINC_MAX_ATOMS = 38

_TOKEN = re.compile(r"^([A-Z][a-z]?)([+-]?)$")


class NotInVocabulary(ValueError):
    """An atom (element and charge) the vocabulary does not have, or too many atoms."""


@dataclass(frozen=True)
class AtomVocabulary:
    """Atom tokens: an element symbol, followed by + or - for a formal charge of +1 / -1."""

    tokens: tuple[str, ...]
    max_atoms: int

    def __post_init__(self) -> None:
        for token in self.tokens:
            if not _TOKEN.match(token):
                raise ValueError(f"atom token {token!r}: use an element symbol with an optional + or - (e.g. 'N+')")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError(f"atom tokens repeat: {self.tokens}")

    def __len__(self) -> int:
        return len(self.tokens)

    def index(self, atom: Chem.Atom) -> int:
        charge = atom.GetFormalCharge()
        if abs(charge) > 1:
            raise NotInVocabulary(f"atom {atom.GetSymbol()} with charge {charge:+d}")
        token = atom.GetSymbol() + ("+" if charge > 0 else "-" if charge < 0 else "")
        try:
            return self.tokens.index(token)
        except ValueError:
            raise NotInVocabulary(f"atom {token!r} is not in the vocabulary {self.tokens}") from None

    def atom(self, index: int) -> Chem.Atom:
        symbol, sign = _TOKEN.match(self.tokens[index]).groups()
        atom = Chem.Atom(symbol)
        atom.SetFormalCharge({"+": 1, "-": -1, "": 0}[sign])
        return atom


QM9_VOCAB = AtomVocabulary(QM9_ATOMS, QM9_MAX_ATOMS)
ZINC_VOCAB = AtomVocabulary(ZINC_ATOMS, ZINC_MAX_ATOMS)


def sample_mol(sample: Optional[str]) -> Optional[Chem.Mol]:
    """The sanitized molecule of a sample; None for an invalid one (None, empty, 'None', longer than
    MAX_SMILES_CHARS, which never reaches RDKit, or failing RDKit's parsing and sanitization, with no correction)."""
    if sample is None:
        return None
    text = sample.strip()
    if not text or text == "None" or len(text) > MAX_SMILES_CHARS:
        return None
    return Chem.MolFromSmiles(text)


def canonical_smiles(sample: Optional[str]) -> Optional[str]:
    """RDKit canonical SMILES without stereo (graphs carry none); None for an invalid sample (`sample_mol`)."""
    mol = sample_mol(sample)
    return None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=False)


def mol_to_graph(mol: Chem.Mol, vocab: AtomVocabulary) -> tuple[Tensor, Tensor]:
    """Heavy-atom graph of a molecule (kekulized). Raises NotInVocabulary for atoms or sizes it cannot hold."""
    mol = Chem.RemoveHs(mol)
    Chem.Kekulize(mol, clearAromaticFlags=True)
    n = mol.GetNumAtoms()
    if n > vocab.max_atoms:
        raise NotInVocabulary(f"{n} heavy atoms; the vocabulary holds at most {vocab.max_atoms}")
    if n == 0:
        raise NotInVocabulary("no heavy atoms")
    atoms = torch.tensor([vocab.index(a) for a in mol.GetAtoms()], dtype=torch.long)
    bonds = torch.zeros(n, n, dtype=torch.long)
    for bond in mol.GetBonds():
        kind = BOND_INDEX.get(bond.GetBondType())
        if kind is None:
            raise NotInVocabulary(f"bond type {bond.GetBondType()}")
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        bonds[i, j] = bonds[j, i] = kind
    return atoms, bonds


def smiles_to_graph(smiles: str, vocab: AtomVocabulary) -> tuple[Tensor, Tensor]:
    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None:
        raise ValueError(f"RDKit cannot parse SMILES {smiles.strip()!r}")
    return mol_to_graph(mol, vocab)


def graph_to_raw_mol(atoms: Tensor, bonds: Tensor, vocab: AtomVocabulary) -> Chem.RWMol:
    """The graph as an RDKit molecule before any sanitization (so that invalid ones can be inspected too)."""
    mol = Chem.RWMol()
    for index in atoms.tolist():
        mol.AddAtom(vocab.atom(index))
    n = len(atoms)
    upper = torch.triu(bonds[:n, :n], diagonal=1)
    for i, j in upper.nonzero().tolist():
        mol.AddBond(i, j, BOND_TYPES[int(upper[i, j])])
    return mol


def fragment_report(raw: Optional[Chem.Mol]) -> tuple[bool, bool]:
    """(one connected piece, the largest piece sanitizes) for an unsanitized molecule (None: neither). The
    largest piece is DiGress's validity: a graph that is valid but for a stray fragment counts."""
    if raw is None or raw.GetNumAtoms() == 0:
        return False, False
    pieces = Chem.GetMolFrags(raw, asMols=True, sanitizeFrags=False)
    largest = Chem.RWMol(max(pieces, key=lambda piece: piece.GetNumAtoms()))
    try:
        Chem.SanitizeMol(largest)
    except Exception:
        return len(pieces) == 1, False
    return len(pieces) == 1, True


def raw_mol_from_smiles(smiles: Optional[str]) -> Optional[Chem.Mol]:
    """A SMILES parsed without sanitization (None when it does not even parse)."""
    return Chem.MolFromSmiles(smiles, sanitize=False) if smiles else None


def graph_to_mol(atoms: Tensor, bonds: Tensor, vocab: AtomVocabulary, correct: bool = False) -> Optional[Chem.Mol]:
    """The molecule of a graph, or None when RDKit's sanitization rejects it (the field's validity).
    correct=True lowers bond orders at over-valent atoms until it sanitizes (report such numbers apart)."""
    mol = graph_to_raw_mol(atoms, bonds, vocab)
    if correct:
        return _sanitize_with_correction(mol)
    try:
        Chem.SanitizeMol(mol)
    except Exception:
        return None
    return mol.GetMol()


def graph_to_smiles(atoms: Tensor, bonds: Tensor, vocab: AtomVocabulary, correct: bool = False) -> Optional[str]:
    mol = graph_to_mol(atoms, bonds, vocab, correct)
    return None if mol is None else Chem.MolToSmiles(mol)


def _sanitize_with_correction(mol: Chem.RWMol, max_rounds: int = 64) -> Optional[Chem.Mol]:
    for _ in range(max_rounds):
        try:
            Chem.SanitizeMol(mol)
            return mol.GetMol()
        except Chem.AtomValenceException as error:
            atom_index = _atom_in_error(str(error))
            if atom_index is None or not _lower_highest_bond(mol, atom_index):
                return None
        except Exception:
            return None
    return None


def _atom_in_error(message: str) -> Optional[int]:
    match = re.search(r"atom # ?(\d+)", message)
    return int(match.group(1)) if match else None


def _lower_highest_bond(mol: Chem.RWMol, atom_index: int) -> bool:
    bonds = sorted(mol.GetAtomWithIdx(atom_index).GetBonds(), key=lambda b: b.GetBondTypeAsDouble(), reverse=True)
    if not bonds:
        return False
    bond = bonds[0]
    order = BOND_INDEX[bond.GetBondType()]
    if order == 1:
        mol.RemoveBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
    else:
        bond.SetBondType(BOND_TYPES[order - 1])
    return True


@dataclass
class EncodedSet:
    """Padded graphs of a SMILES list: atoms [M, n] (-1 = padding), bonds [M, n, n], and what was skipped."""

    atoms: Tensor
    bonds: Tensor
    smiles: list[str]  # canonical SMILES of the kept molecules
    skipped: dict[str, int]  # reason -> count


def encode_smiles(smiles: Iterable[str], vocab: AtomVocabulary) -> EncodedSet:
    """Encode many SMILES; unparsable ones and those outside the vocabulary are skipped and counted."""
    atoms_list, bonds_list, kept = [], [], []
    skipped = {"unparsable": 0, "outside vocabulary": 0}
    for text in smiles:
        if len(text.strip()) > MAX_SMILES_CHARS:
            skipped["outside vocabulary"] += 1  # too many atoms for any vocabulary; RDKit never sees it
            continue
        mol = Chem.MolFromSmiles(text.strip())
        if mol is None:
            skipped["unparsable"] += 1
            continue
        try:
            atoms, bonds = mol_to_graph(mol, vocab)
        except NotInVocabulary:
            skipped["outside vocabulary"] += 1
            continue
        atoms_list.append(atoms)
        bonds_list.append(bonds)
        kept.append(Chem.MolToSmiles(mol, isomericSmiles=False))  # graphs carry no stereo
    m, n = len(atoms_list), vocab.max_atoms
    padded_atoms = torch.full((m, n), -1, dtype=torch.long)
    padded_bonds = torch.zeros(m, n, n, dtype=torch.long)
    for i, (atoms, bonds) in enumerate(zip(atoms_list, bonds_list)):
        k = len(atoms)
        padded_atoms[i, :k] = atoms
        padded_bonds[i, :k, :k] = bonds
    return EncodedSet(padded_atoms, padded_bonds, kept, skipped)


def decode_graphs(atoms: Tensor, bonds: Tensor, vocab: AtomVocabulary, correct: bool = False) -> list[Optional[Chem.Mol]]:
    """Molecules of padded graphs (atoms -1 = padding); None for the invalid ones."""
    mols = []
    for row_atoms, row_bonds in zip(atoms, bonds):
        real = row_atoms >= 0
        n = int(real.sum())
        mols.append(graph_to_mol(row_atoms[:n], row_bonds[:n, :n], vocab, correct) if n else None)
    return mols


def decode_raw_graphs(atoms: Tensor, bonds: Tensor, vocab: AtomVocabulary) -> list[Optional[Chem.Mol]]:
    """Unsanitized molecules of padded graphs (atoms -1 = padding); None for an empty graph."""
    raws = []
    for row_atoms, row_bonds in zip(atoms, bonds):
        n = int((row_atoms >= 0).sum())
        raws.append(graph_to_raw_mol(row_atoms[:n], row_bonds[:n, :n], vocab) if n else None)
    return raws


def mols_to_smiles(mols: Sequence[Optional[Chem.Mol]]) -> list[Optional[str]]:
    return [None if m is None else Chem.MolToSmiles(m) for m in mols]
