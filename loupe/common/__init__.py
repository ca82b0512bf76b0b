"""Pieces every app shares: the error base, the JSON view wrapper, lookups, permission names.

Nothing here imports a Loupe app, so any app may import it (the import-linter contract in
pyproject.toml keeps it so).
"""
