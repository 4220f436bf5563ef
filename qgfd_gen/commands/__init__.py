"""Console commands built on the whole workbench: `lightning` (training) and `qgfd-bench`. They sit at the
top of the layers (see README, Architecture), so nothing below imports them."""
