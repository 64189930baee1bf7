"""Hostile inputs: adapters, names, numbers and request bodies from strangers (issue 13)."""
