"""Text cleaning shared by the reports: terminal colour codes and XML-illegal characters."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# Characters XML 1.0 forbids (and that HTML renders as garbage): C0 controls except
# tab, newline and carriage return, lone surrogates, U+FFFE and U+FFFF.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def clean(text: object) -> str:
    """Text safe for XML and readable in HTML: colour codes dropped, controls shown as U+FFFD."""
    return _ILLEGAL.sub("\ufffd", _ANSI.sub("", "" if text is None else str(text)))
