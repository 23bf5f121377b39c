"""Secrets recognised by their shape, whatever name they are stored under.

A value called ``AUTH`` or ``DATABASE_URL`` is not a secret by its name, but
``Bearer sk-...`` and ``postgres://user:pass@host/db`` are by their look. The patterns
follow the well-known detectors (detect-secrets' keyword, basic-auth and JWT plugins;
gitleaks' generic API-key rules), kept to shapes that ordinary text rarely has, so that
masking them does not shred a log line:

* an HTTP credential after its scheme: ``Bearer <token>``, ``Basic <base64>``;
* API keys by their vendor prefix (``sk-``, ``sk_live_``, ``ghp_``, ``xoxb-``, ``AKIA``, ...);
* the password in a URL's userinfo (``scheme://user:password@host``);
* a JWT (three base64url parts, the first two starting ``eyJ``, JSON's ``{"``).

Each pattern names the part to hide in its ``secret`` group; the rest stays readable.
"""

from __future__ import annotations

import re

MASK = "****"
_TOKEN = r"[A-Za-z0-9\-._~+/]"
SHAPES: tuple[re.Pattern[str], ...] = (
    re.compile(rf"(?i)\bbearer[ \t]+(?P<secret>{_TOKEN}{{8,}}=*)"),
    # Basic credentials are base64: a word ("Basic authentication", "Basic Auth") is prose;
    # base64 has a digit, + / =, or a capital after the first letter.
    re.compile(r"\bBasic[ \t]+(?P<secret>[A-Za-z0-9+/](?=[A-Za-z0-9+/]*[A-Z0-9+/=])"
               r"[A-Za-z0-9+/]{5,}={0,2})"),
    re.compile(r"(?P<secret>\b(?:sk|pk|rk)[-_](?:live[-_]|test[-_]|proj[-_]|ant[-_])?"
               r"[A-Za-z0-9_\-]{12,})"),
    re.compile(r"(?P<secret>\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
               r"|glpat-[A-Za-z0-9_\-]{20,}|xox[abposr]-[A-Za-z0-9\-]{10,}"
               r"|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{30,}))"),
    re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"]*:(?P<secret>[^\s/@'\"]+)@"),
    re.compile(r"(?P<secret>\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*)"),
)
# Substrings (lower case) at least one of which every shape contains: plain `in` tests are
# far cheaper than the patterns, and most lines of a request log have none of them.
HINTS = ("bearer", "basic", "sk-", "sk_", "pk-", "pk_", "rk-", "rk_", "ghp_", "gho_", "ghu_",
         "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "akia", "asia", "aiza", "://", "eyj")


def maybe_shaped(lowered: str) -> bool:
    return any(hint in lowered for hint in HINTS)


def _hide(match: re.Match[str]) -> str:
    start, end = match.span("secret")
    whole = match.group(0)
    offset = match.start()
    if match.group("secret") == MASK:
        return whole
    return whole[: start - offset] + MASK + whole[end - offset:]


def mask_shapes(text: str) -> str:
    """text with every secret-shaped part replaced by ****."""
    if not maybe_shaped(text.lower()):
        return text
    for pattern in SHAPES:
        text = pattern.sub(_hide, text)
    return text


def shaped_secrets(text: str) -> list[str]:
    """The secret-shaped parts of text (a service's env value), to hunt for elsewhere."""
    if not maybe_shaped(text.lower()):
        return []
    return [m.group("secret") for pattern in SHAPES for m in pattern.finditer(text)]


def has_shape(text: str) -> bool:
    return bool(shaped_secrets(text))
