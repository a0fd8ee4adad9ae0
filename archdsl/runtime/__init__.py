"""Kernel code that generated runtimes copy (NumPy) or ship (C)."""
