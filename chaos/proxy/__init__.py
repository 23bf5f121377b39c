"""Toxiproxy: client adapter, providers and the project's own server."""
