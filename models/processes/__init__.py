"""Diffusion processes: the Gaussian chain on images (schedule, log-SNR, reverse loop, DPM-Solver++ / adaptive
steps, early exit, variational bound) and the discrete chain on graphs. They take a denoiser as a function
and know nothing of Lightning."""
