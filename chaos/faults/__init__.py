"""Fault families: Toxiproxy toxics and container actions, looked up by the registry."""
