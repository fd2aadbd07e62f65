"""Measurements: timing, memory, quality, file facts, GPU side by side."""
