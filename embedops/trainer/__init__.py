"""embedops.trainer (see the module docstrings)."""
