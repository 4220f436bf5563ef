"""What is trained: the LightningModules (network + process), their optimiser and EMA, callbacks, loading
and export."""
