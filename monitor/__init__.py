"""NeuroFusion Monitor: the application (CLI, acquisition, inference service, dashboard, recordings)."""

__version__ = "0.1.0"
