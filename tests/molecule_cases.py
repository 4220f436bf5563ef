"""Hand-written molecules shared by the chemistry and data tests."""

# ZINC-like molecules with charges, aromatic rings, halogens, P and S
ZINC_LIKE = [
    "CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1",
    "C[NH+]1CCC(NC(=O)c2ccc(Cl)cc2)CC1",
    "O=[N+]([O-])c1ccc(S(=O)(=O)N2CCOCC2)cc1",
    "CC[NH2+]C1CCCC1C(=O)[O-]",
    "Brc1ccc(-c2nnc(SCC(=O)N3CCCC3)o2)cc1",
    "COP(=O)(OC)C(O)c1ccc(I)cc1",
    "C[n+]1ccccc1",
    "[NH3+]CCc1c[nH]c2ccccc12",
    "CC(=O)N[C@@H](Cc1ccccc1)C(=O)[O-]",
    "N#Cc1ccccc1[S-]",
]
