"""`chaos explore`: search fault schedules with Hypothesis and shrink a failing one.

strategies draws schedules, schedule turns one into an ordinary Scenario (and YAML),
runner drives Hypothesis with real short runs and writes what it found.
"""
