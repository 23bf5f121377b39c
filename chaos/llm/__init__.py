"""LLM providers' journals joined with the client records (issue 20, contract part P3)."""
