"""Secret masking, applied to everything a run writes or prints.

A service environment variable whose name contains TOKEN, KEY, SECRET or PASSWORD
(any case) is a secret, unless the part of the name holding it is an ordinary word
(ORDINARY_WORDS: ``portkey`` is a gateway, ``PORTKEY_API_KEY`` a secret by its KEY).
Two rules, so that masking holds even where the name is gone:

* by name: ``NAME=value``, ``NAME: value`` and ``"NAME": "value"`` (YAML, logs, command
  lines, JSON) show ``****`` for the value whenever NAME contains one of the words;
* by value: the literal value of every secret variable of the scenario is replaced by
  ``****`` wherever it appears (a log line that prints it, a URL that embeds it). Values
  shorter than MIN_VALUE_LENGTH are left to the name rule, or masking them would
  shred ordinary text (a value such as ``on`` or ``1``);
* by shape (chaos.report.shapes): ``Bearer <token>``, ``sk-...`` keys, URL passwords and
  JWTs are hidden under any name, and their parts join the values hunted for elsewhere.

Header-like names (Authorization, Proxy-Authorization, Cookie, X-Api-Key) are secret names,
and their value runs over the credential's scheme: ``Authorization: ****``. A scenario's
YAML text is masked with its structure in mind (chaos.report.mask_yaml): a multi-line
value under a secret name is hidden over all its lines.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from chaos.report.mask_yaml import mask_yaml
from chaos.report.shapes import mask_shapes, maybe_shaped, shaped_secrets

MASK = "****"
MIN_VALUE_LENGTH = 4
MIN_SHAPED_LENGTH = 8  # a URL password "pass" is hidden in its URL, not in every "passed"
_WORDS = "TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTHORIZATION|COOKIE"
_LOWER_WORDS = tuple(_WORDS.lower().split("|"))
SECRET_NAME = re.compile(_WORDS, re.IGNORECASE)
# Words that hold a secret word and name no credential. A name part (the text between
# underscores, dashes, dots, ...) that is one of them holds no secret, everywhere a name is
# judged: PORTKEY_URL and portkey:stock (the Portkey gateway's spec) are not secret names,
# PORTKEY_API_KEY is, by its KEY part.
ORDINARY_WORDS = frozenset({"portkey"})
_NAME_PARTS = re.compile(r"[^\W_]+")
# NAME (a word containing a secret word), optional closing quote, = or :, then the value:
# a quoted string, or an optional credential scheme (Bearer, Basic, ...) and a run of
# characters up to whitespace, a comma, a brace or a quote. NAME is a candidate:
# is_secret_name decides.
_ASSIGNMENT = re.compile(
    rf"""(?P<head>\b(?P<name>[\w-]*(?:{_WORDS})[\w-]*)["']?[ \t]*[=:][ \t]*)"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'"""
    r"""|(?:(?:Bearer|Basic|Digest|Token|Bot|ApiKey)[ \t]+)?[^\s,}\]"'#]+)""",
    re.IGNORECASE,
)

# In service logs a secret's value runs to the next whitespace (``token=a,b`` hides
# ``a,b``): a log line has no syntax a comma could belong to, so over-masking is safe there.
_LOG_ASSIGNMENT = re.compile(
    r"(?i)(?P<head>(?P<name>(?<![\w-])[\w-]*?(?:token|key|secret|password)[A-Z_]*)\s*[=:]\s*)"
    r"(?!\*{4}(?:\s|$))(?P<value>\S+)")

T = TypeVar("T")


def is_secret_name(name: str) -> bool:
    """A name with a part that holds a secret word and is no ordinary word."""
    if not SECRET_NAME.search(name):
        return False
    lowered = name.lower()
    if not any(word in lowered for word in ORDINARY_WORDS):
        return True  # the common case, without splitting the name
    return any(SECRET_NAME.search(part) and part.lower() not in ORDINARY_WORDS
               for part in _NAME_PARTS.findall(name))


def secret_values(envs: Iterable[dict[str, Any]]) -> list[str]:
    """The values of the secret variables among service environments, longest first; and
    the secret-shaped parts of any variable (``AUTH: Bearer <token>`` gives the token)."""
    values: set[str] = set()
    for env in envs:
        for k, v in env.items():
            if is_secret_name(str(k)):
                # the whole value, and each line or word of a folded or literal one
                values.update([str(v), str(v).strip(), *(
                    w for w in str(v).split() if len(w) >= MIN_SHAPED_LENGTH)])
            values.update(p for p in shaped_secrets(str(v)) if len(p) >= MIN_SHAPED_LENGTH)
    return sorted((v for v in values if len(v) >= MIN_VALUE_LENGTH), key=len, reverse=True)


class Masker:
    """Masks text by name and by the known secret values; cheap when there is nothing to do."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = sorted({v for v in values if len(v) >= MIN_VALUE_LENGTH}, key=len,
                             reverse=True)

    def text(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        lowered = text.lower()
        if maybe_shaped(lowered):
            text = mask_shapes(text)
        if any(word in lowered for word in _LOWER_WORDS):
            text = _mask_secret_names(_ASSIGNMENT, text, _mask_assignment)
        return text

    def yaml(self, text: str) -> str:
        """A scenario's YAML: multi-line values of secret names hidden whole, then text()."""
        return self.text(mask_yaml(text, is_secret_name))

    def log(self, text: str) -> str:
        """A service's log text: the rules of text(), then values run to whitespace."""
        text = self.text(text)
        if any(word in text.lower() for word in _LOWER_WORDS[:4]):
            text = _mask_secret_names(_LOG_ASSIGNMENT, text, _mask_log_assignment)
        return text

    def env(self, env: dict[str, Any]) -> dict[str, Any]:
        return {k: (MASK if is_secret_name(str(k)) else self.value(v)) for k, v in env.items()}

    def value(self, value: Any) -> Any:
        """Any JSON-like or dataclass value with every string in it masked."""
        if isinstance(value, str):
            return self.text(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {f.name: self._field(f.name, getattr(value, f.name))
                       for f in dataclasses.fields(value)}
            return dataclasses.replace(value, **changes)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        return value

    def _field(self, name: str, value: Any) -> Any:
        if name.endswith("_yaml") and isinstance(value, str):  # Result.scenario_yaml
            return self.yaml(value)
        return self.value(value)

    def apply(self, obj: T) -> T:
        """A masked copy of a dataclass (a Result, an event)."""
        masked: T = self.value(obj)
        return masked

    def file(self, path: Path) -> None:
        """Mask a text file in place (run logs, events, the load spec); .log files as logs."""
        try:
            original = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        mask = self.log if path.suffix == ".log" else self.text
        masked = "\n".join(mask(line) for line in original.split("\n"))
        if masked != original:
            path.write_text(masked, encoding="utf-8")


# A count of LLM tokens (tokens, max_tokens, prompt_tokens in records and scenarios) holding
# a whole number, or a [low, high] range of them, is no secret
_TOKEN_COUNT = re.compile(r"(?i)^[\w-]*tokens[\"']?[ \t]*[=:]")
_WHOLE_NUMBER = re.compile(r"^(\[|\[?-?\d{1,12})$")  # "[" opens a list over lines


def _mask_secret_names(pattern: re.Pattern[str], text: str,
                       mask: Callable[[re.Match[str]], str]) -> str:
    """``pattern.sub(mask, text)`` over the candidates whose name is a secret name; after
    one that is not, the search goes on from its value (``portkey:api_key: abc``)."""
    out: list[str] = []
    pos = 0
    while (match := pattern.search(text, pos)) is not None:
        if is_secret_name(match.group("name")):
            out += [text[pos:match.start()], mask(match)]
            pos = match.end()
        else:
            out.append(text[pos:match.end("head")])
            pos = match.end("head")
    out.append(text[pos:])
    return "".join(out)


def _mask_log_assignment(match: re.Match[str]) -> str:
    return match.group("head") + MASK


def _mask_assignment(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.strip("\"'") in ("", MASK):
        return match.group(0)
    if _WHOLE_NUMBER.match(value) and _TOKEN_COUNT.match(match.group("head")):
        return match.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match.group('head')}{quote}{MASK}{quote}"


def mask_run_files(run_dir: Path, masker: Masker) -> None:
    """Mask the run's text outputs written by other modules (logs, events, load spec)."""
    paths = {*run_dir.rglob("*.log"), *run_dir.rglob("*.ndjson"), *run_dir.glob("*.json"),
             *run_dir.glob("*.tsv"), *run_dir.glob("*.txt")}
    for path in sorted(paths):
        if path.is_file() and path.name != "result.json":
            masker.file(path)


def masked(listener: Callable[[Any], None], masker: Masker) -> Callable[[Any], None]:
    """An event listener that sees events with their text masked (console, events.ndjson)."""

    def listen(event: Any) -> None:
        listener(masker.apply(event))  # also without known values: names and shapes

    return listen
