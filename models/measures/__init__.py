"""Measures of samples: FID / KID / IS, molecule metrics, graph kernels, and grids (pictures and sample
files). Tensors and SMILES in, numbers and files out: used by the LightningModules while training and by
the commands afterwards."""
