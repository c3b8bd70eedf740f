"""Simulated EMG sources (motor-unit model) and the amplifier that paces any source onto LSL."""
