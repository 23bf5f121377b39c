"""Observation: the engine's typed event stream, its recorder, and probes."""
