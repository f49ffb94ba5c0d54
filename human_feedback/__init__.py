"""Human feedback: candidates, rendered videos, the annotation server and store, preference pairs."""
