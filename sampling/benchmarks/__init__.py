"""The benchmark suites behind `qgfd-bench`: the operator against plain attention, a U-Net training step, the
graph denoisers, the structure studies' arms, the samplers, and the published-scale configs on one GPU. Every
figure is a median over repeats after a warm-up, and ratios compare functions timed in turn in one process."""
