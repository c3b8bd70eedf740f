"""The inference service: NeuroFusionNet in worker processes, reached over ZeroMQ (wire format: docs/protocol.md).

Import the pieces from their modules (``monitor.inference.client`` etc.); this package imports nothing heavy.
"""
