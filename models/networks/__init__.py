"""Networks: the U-Net (diffusers blocks, QGFD or vanilla attention) and the graph transformer denoiser.
They know nothing of noise schedules, training or sampling."""
