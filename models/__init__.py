"""NeuroFusionNet and its baselines, training, evaluation, checkpoints and export."""
