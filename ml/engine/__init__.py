"""Loupe's defect-detection engine in plain PyTorch.

It knows nothing of Django, settings or the environment: callers pass frozen dataclasses, paths
and a device string, and get frozen dataclasses back. Importing a module does no work.
"""
