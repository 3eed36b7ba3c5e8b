"""Synthetic data generators: traffic, passenger flow, water quality."""
