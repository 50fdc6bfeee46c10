"""Instruments and their samples."""
