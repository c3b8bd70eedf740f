"""Pure, causal signal processing for EMG: no I/O, no threads except engine.py."""
