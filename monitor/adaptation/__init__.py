"""Adaptive learning during a live session: label spans, fine-tune in a background process, hot-swap the model."""
