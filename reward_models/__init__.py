"""Learned reward models (Bradley-Terry, ensembles), heuristic rewards and reward wrappers."""
