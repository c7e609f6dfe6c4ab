"""embedops.reembed (see the module docstrings)."""
