"""requests.ndjson rewritten once after the run, atomically: a temporary file beside it,
streamed line by line (memory follows one record, not the run), then renamed over it.

``edit`` gets each parsed record and returns the record to write, or None to keep the line
byte for byte (a torn or foreign line is always kept as it was).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Edit = Callable[[dict[str, Any]], dict[str, Any] | None]


def rewrite_records(path: Path, edit: Edit) -> int:
    """Apply ``edit`` to every record of ``path``; the number of records changed."""
    if not path.exists():
        return 0
    changed = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out, \
                open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                new = _edited(line, edit)
                if new is None:
                    out.write(line)
                    continue
                changed += 1
                out.write(json.dumps(new, separators=(",", ":")) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return changed


def _edited(line: str, edit: Edit) -> dict[str, Any] | None:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError:
        return None
    return edit(raw) if isinstance(raw, dict) and line.endswith("\n") else None
