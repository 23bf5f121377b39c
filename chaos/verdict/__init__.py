"""Verdicts: statistics over request records and the evaluation of assertions."""
