"""The shared masking helpers: one rule for what is secret and how it is hidden.

Environment values whose names contain TOKEN, KEY, SECRET or PASSWORD must never
reach the console, events.ndjson, result.json, junit.xml or the HTML report.
Every writer goes through the same rule so that no output is masked differently:
`mask_env` for name/value maps, `mask_text` for free text that may carry a secret
value (a command line, a log line, an error message), `secret_values` to collect
the values of a scenario's services.

The rule itself lives in :mod:`chaos.report.mask` (``Masker``: by name,
``NAME=value``; and by the literal values of the scenario's secrets); these
functions are its small, stable front door for the console, the recorder, the
CLI and the pytest plugin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chaos.report.mask import MASK, MIN_VALUE_LENGTH, Masker, is_secret_name
from chaos.report.mask import secret_values as _secret_values

__all__ = ["MASK", "MIN_VALUE_LENGTH", "is_secret_name", "mask_env", "mask_text", "secret_values"]


def mask_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of env with the values of secret-looking names replaced by ****."""
    return Masker().env(dict(env))


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """text with every known secret value, and every NAME=value of a secret name, masked."""
    return Masker(secrets).text(text)


def secret_values(envs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The values to hunt for in free text (secret names only, long enough), longest first."""
    return _secret_values(dict(env) for env in envs)
