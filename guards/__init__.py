"""embedops.guards (see the module docstrings)."""
