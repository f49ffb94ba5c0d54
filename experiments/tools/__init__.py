"""Checks anyone can run on the repository with the project's own tools (``python -m experiments.tools.NAME``)."""
