"""What happens with a trained model: the sweep loop over sampler settings, results folders, sampling split
across processes, and the image / molecule evaluations that the commands (`sampling.commands`) run with typed
settings."""
