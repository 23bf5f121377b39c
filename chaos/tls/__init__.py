"""TLS for runs (issue 22): the run-scoped test CA and what it issues."""
