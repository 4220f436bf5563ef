"""Every console entry point: lightning, qgfd-sample, qgfd-eval, qgfd-study, qgfd-bench, qgfd-export,
qgfd-upgrade, qgfd-features. Argument parsing lives here and nowhere else."""
