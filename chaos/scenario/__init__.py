"""Scenario files: YAML with line marks, typed models, overrides, cross-checks."""
