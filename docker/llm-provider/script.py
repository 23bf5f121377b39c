"""The provider's script: rules deciding how each request is answered.

The language is the scenario's `llm:` block (chaos/scenario/llm_provider.py validates it
in the harness, with file:line:key); this module is the provider's own check of the same
keys, so the control API (``POST /_chaos/rules``) refuses what the loader would.

A rule is ``{when: {...}, do: {...}}``. Every rule sees every request: its counter counts
the requests that match its model / api / stream / header / window (1-based, since its
rule set was installed), whether or not another rule answered them, so `requests: "3"`
means the provider's first three such requests. The first rule whose whole `when` holds
(counter in range, then the `share` draw) answers. Rule sets installed through the
control API go before the script's, the newest first.
"""

from __future__ import annotations

import fnmatch
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

WHEN_KEYS = ("model", "api", "stream", "header", "min_prompt_tokens", "requests", "window",
             "share")
DO_KEYS = ("status", "error", "retry_after", "retry_after_format", "ratelimit_headers",
           "finish_reason", "first_token_delay", "token_delay", "stall_after", "stall_for",
           "cut_after", "cut_with", "error_after", "no_done", "malformed_after", "tokens")
SPEC_KEYS = ("name", "models", "tokens", "first_token_delay", "token_delay", "tpm", "rules",
             "request_id")
ERRORS = ("rate_limit_exceeded", "server_error", "overloaded", "context_length_exceeded",
          "content_policy_violation")
RETRY_AFTER_FORMATS = ("seconds", "http-date", "ms")
STREAM_FAULTS = ("stall_after", "cut_after", "error_after", "malformed_after")  # one a rule
MAX_TOKENS = 4096
MAX_DELAY_S = 600.0
MAX_STALL_S = 300.0
MAX_RULES = 200
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|m|h)?\s*$")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_REQUESTS = re.compile(r"^\s*(?:(\d+)|(\d+)\s*-\s*(\d+)|every\s+(\d+))\s*$")


class ScriptError(ValueError):
    """A rule the provider cannot run; the message names the key."""


def duration(value: Any, key: str, upper: float = MAX_DELAY_S) -> float:
    """'250ms', '2s' or a number of seconds."""
    if isinstance(value, bool):
        raise ScriptError(f"{key}: expected a duration like 250ms or 2s")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ScriptError(f"{key}: expected a duration like 250ms or 2s, got {value!r}")
    if not 0 <= seconds <= upper:
        raise ScriptError(f"{key}: {value!r} is out of range (0 to {upper:g}s)")
    return seconds


def _count(value: Any, key: str, lower: int = 0, upper: int = MAX_TOKENS) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lower <= value <= upper:
        raise ScriptError(f"{key}: expected an integer {lower}..{upper}, got {value!r}")
    return value


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ScriptError(f"{key}: expected true or false, got {value!r}")
    return value


def _text(value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or (choices is not None and value not in choices):
        shown = f"one of {', '.join(choices)}" if choices else "a string"
        raise ScriptError(f"{key}: expected {shown}, got {value!r}")
    return value


def _mapping(value: Any, key: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScriptError(f"{key}: expected a mapping, got {value!r}")
    for name in value:
        if name not in known:
            raise ScriptError(f"{key}.{name}: unknown key (known: {', '.join(known)})")
    return value


@dataclass(frozen=True)
class Requests:
    """Which of the counted requests: the first N, A-B, or every K-th."""

    first: int
    last: int | None  # None: no upper end (every K)
    every: int = 0
    text: str = ""

    @classmethod
    def parse(cls, value: Any, key: str) -> Requests:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        match = _REQUESTS.match(value) if isinstance(value, str) else None
        if match is None:
            raise ScriptError(f"{key}: expected \"N\", \"A-B\" or \"every K\", got {value!r}")
        n, a, b, k = match.groups()
        if n is not None:
            found = cls(1, int(n), text=value)
        elif k is not None:
            found = cls(1, None, int(k), text=value)
        else:
            found = cls(int(a), int(b), text=value)
        if found.first < 1 or (found.last is not None and found.last < found.first) or (
                k is not None and found.every < 1):
            raise ScriptError(f"{key}: {value!r} names no request (counted from 1)")
        return found

    def holds(self, count: int) -> bool:
        if self.every:
            return count % self.every == 0
        return self.first <= count <= (self.last if self.last is not None else count)


@dataclass(frozen=True)
class When:
    model: str | None = None
    api: str | None = None
    stream: bool | None = None
    header: tuple[tuple[str, str], ...] = ()
    min_prompt_tokens: int | None = None
    requests: Requests | None = None
    window: tuple[float, float] | None = None
    share: float | None = None

    @classmethod
    def parse(cls, value: Any, key: str) -> When:
        raw = _mapping(value, key, WHEN_KEYS)
        found: dict[str, Any] = {}
        if "model" in raw:
            found["model"] = _text(raw["model"], f"{key}.model")
        if "api" in raw:
            found["api"] = _text(raw["api"], f"{key}.api", ("openai", "anthropic"))
        if "stream" in raw:
            found["stream"] = _flag(raw["stream"], f"{key}.stream")
        if "header" in raw:
            headers = raw["header"]
            if not isinstance(headers, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
                raise ScriptError(f"{key}.header: expected a mapping of header name to value")
            found["header"] = tuple((k.lower(), v) for k, v in headers.items())
        if "min_prompt_tokens" in raw:
            least = raw["min_prompt_tokens"]
            if isinstance(least, bool) or not isinstance(least, int) or least < 0:
                raise ScriptError(f"{key}.min_prompt_tokens: expected a whole number >= 0, "
                                  f"got {least!r}")
            found["min_prompt_tokens"] = least
        if "requests" in raw:
            found["requests"] = Requests.parse(raw["requests"], f"{key}.requests")
        if "window" in raw:
            window = raw["window"]
            if not isinstance(window, list) or len(window) != 2:
                raise ScriptError(f"{key}.window: expected [from, until]")
            start = duration(window[0], f"{key}.window", 7 * 86400)
            until = duration(window[1], f"{key}.window", 7 * 86400)
            if until < start:
                raise ScriptError(f"{key}.window: until is before from")
            found["window"] = (start, until)
        if "share" in raw:
            share = raw["share"]
            if isinstance(share, bool) or not isinstance(share, int | float) or not (
                    0 <= share <= 1):
                raise ScriptError(f"{key}.share: expected a number 0..1, got {share!r}")
            found["share"] = float(share)
        return cls(**found)


@dataclass(frozen=True)
class Do:
    """One behaviour (some combine: a status with retry_after and ratelimit headers, a
    finish_reason with delays, a stream fault with delays)."""

    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    retry_after_format: str = "seconds"
    ratelimit_headers: bool = False
    finish_reason: str | None = None
    first_token_delay: float | None = None
    token_delay: float | None = None
    stall_after: int | None = None
    stall_for: float | None = None
    cut_after: int | None = None
    cut_with: str = "fin"
    error_after: int | None = None
    no_done: bool = False
    malformed_after: int | None = None
    tokens: int | None = None

    @classmethod
    def parse(cls, value: Any, key: str) -> Do:
        raw = _mapping(value, key, DO_KEYS)
        found: dict[str, Any] = {}
        if "status" in raw:
            found["status"] = _count(raw["status"], f"{key}.status", 200, 599)
        if "error" in raw:
            found["error"] = _text(raw["error"], f"{key}.error", ERRORS)
        for name in ("retry_after", "first_token_delay", "token_delay"):
            if name in raw:
                found[name] = duration(raw[name], f"{key}.{name}")
        if "stall_for" in raw:
            found["stall_for"] = duration(raw["stall_for"], f"{key}.stall_for", MAX_STALL_S)
        if "retry_after_format" in raw:
            found["retry_after_format"] = _text(raw["retry_after_format"],
                                                f"{key}.retry_after_format", RETRY_AFTER_FORMATS)
        if "cut_with" in raw:
            found["cut_with"] = _text(raw["cut_with"], f"{key}.cut_with", ("fin", "rst"))
        if "finish_reason" in raw:
            found["finish_reason"] = _text(raw["finish_reason"], f"{key}.finish_reason")
        for name in ("ratelimit_headers", "no_done"):
            if name in raw:
                found[name] = _flag(raw[name], f"{key}.{name}")
        for name in STREAM_FAULTS:
            if name in raw:
                found[name] = _count(raw[name], f"{key}.{name}")
        if "tokens" in raw:
            found["tokens"] = _count(raw["tokens"], f"{key}.tokens", 1)
        do = cls(**found)
        faults = [n for n in STREAM_FAULTS if n in found]
        if len(faults) > 1:
            raise ScriptError(f"{key}: {' and '.join(faults)} do not combine (one stream fault)")
        if do.failing and (faults or do.finish_reason is not None):
            raise ScriptError(f"{key}: status {do.answer_status} answers with an error; "
                              f"{(faults or ['finish_reason'])[0]} needs a 200 answer")
        if ("retry_after_format" in raw and do.retry_after is None):
            raise ScriptError(f"{key}.retry_after_format: needs retry_after")
        if "stall_for" in raw and do.stall_after is None:
            raise ScriptError(f"{key}.stall_for: needs stall_after")
        if "cut_with" in raw and do.cut_after is None:
            raise ScriptError(f"{key}.cut_with: needs cut_after")
        return do

    @property
    def stream_fault(self) -> tuple[str, int] | None:
        """The rule's stream fault (at most one): its name and after how many tokens."""
        for name in STREAM_FAULTS:
            after = getattr(self, name)
            if after is not None:
                return name, after
        return None

    @property
    def failing(self) -> bool:
        """An error answer: a non-200 status, an error class (not error_after's), or
        retry_after alone (which means 429)."""
        return self.answer_status != 200

    @property
    def answer_status(self) -> int:
        if self.status is not None:
            return self.status
        if self.error is not None and self.error_after is None:  # else: the in-stream error
            return DEFAULT_STATUS[self.error]
        if self.retry_after is not None:
            return 429
        return 200

    def text(self) -> str:
        """The journal's `behaviour`: short, e.g. "429 retry_after=2s", "stall_after=3"."""
        parts: list[str] = []
        if self.failing:
            parts.append(str(self.answer_status))
            if self.error is not None:
                parts.append(self.error)
        for name in ("retry_after", "first_token_delay", "token_delay", "stall_for"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={_seconds(value)}")
        if self.retry_after is not None and self.retry_after_format != "seconds":
            parts.append(f"retry_after_format={self.retry_after_format}")
        if self.ratelimit_headers:
            parts.append("ratelimit_headers")
        if self.finish_reason is not None:
            parts.append(f"finish_reason={self.finish_reason}")
        for name in (*STREAM_FAULTS, "tokens"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value}")
        if self.cut_after is not None and self.cut_with != "fin":
            parts.append(f"cut_with={self.cut_with}")
        if self.no_done:
            parts.append("no_done")
        return " ".join(parts) or "normal"


DEFAULT_STATUS = {"rate_limit_exceeded": 429, "server_error": 500, "overloaded": 529,
                  "context_length_exceeded": 400, "content_policy_violation": 400}


def _seconds(value: float) -> str:
    return f"{value:g}s" if value >= 1 else f"{value * 1000:g}ms"


@dataclass
class Rule:
    when: When
    do: Do
    ref: str  # "<set id>#<index>"
    count: int = 0

    def filters(self, facts: Facts, elapsed: float) -> bool:
        """Every condition but the counter and the share draw."""
        when = self.when
        if when.model is not None and not fnmatch.fnmatchcase(facts.model, when.model):
            return False
        if when.api is not None and facts.api != when.api:
            return False
        if when.stream is not None and facts.stream != when.stream:
            return False
        if any(facts.headers.get(name) != value for name, value in when.header):
            return False
        if when.min_prompt_tokens is not None and facts.prompt_tokens < when.min_prompt_tokens:
            return False
        return when.window is None or when.window[0] <= elapsed <= when.window[1]


@dataclass(frozen=True)
class Facts:
    """What the rules look at in one request."""

    api: str
    model: str
    stream: bool
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    prompt_tokens: int = 0  # estimated (characters / 4), as the journal records it


@dataclass
class RuleSet:
    id: str
    rules: list[Rule]
    raw: list[Any]
    installed: float  # monotonic
    installed_at: float  # epoch, for GET /_chaos/rules

    def shown(self) -> dict[str, Any]:
        return {"id": self.id, "installed": self.installed_at, "rules": self.raw,
                "counts": [r.count for r in self.rules]}


def parse_rules(value: Any, set_id: str, key: str = "rules") -> list[Rule]:
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise ScriptError(f"{key}: expected a list of at most {MAX_RULES} rules")
    rules = []
    for i, item in enumerate(value):
        raw = _mapping(item, f"{key}[{i}]", ("when", "do"))
        rules.append(Rule(When.parse(raw.get("when", {}), f"{key}[{i}].when"),
                          Do.parse(raw.get("do", {}), f"{key}[{i}].do"), f"{set_id}#{i}"))
    return rules


class Script:
    """The script's rules and the rule sets installed since; decides each request."""

    def __init__(self, rules: Any = (), rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        raw = list(rules)
        self.base = RuleSet("script", parse_rules(raw, "script"), raw, clock(), time.time())
        self.installed: list[RuleSet] = []  # newest first
        self.next_id = 1

    def install(self, rules: Any) -> str:
        set_id = f"r{self.next_id}"
        parsed = parse_rules(rules, set_id)
        self.next_id += 1
        self.installed.insert(0, RuleSet(set_id, parsed, list(rules), self.clock(), time.time()))
        return set_id

    def remove(self, set_id: str) -> bool:
        kept = [s for s in self.installed if s.id != set_id]
        found = len(kept) != len(self.installed)
        self.installed = kept
        return found

    def shown(self) -> list[dict[str, Any]]:
        return [s.shown() for s in (*self.installed, self.base)]

    def decide(self, facts: Facts) -> Rule | None:
        now = self.clock()
        chosen: Rule | None = None
        for rule_set in (*self.installed, self.base):
            elapsed = now - rule_set.installed
            for rule in rule_set.rules:
                if not rule.filters(facts, elapsed):
                    continue
                rule.count += 1
                if chosen is not None:
                    continue
                when = rule.when
                if when.requests is not None and not when.requests.holds(rule.count):
                    continue
                if when.share is not None and self.rng.random() >= when.share:
                    continue
                chosen = rule
        return chosen


@dataclass(frozen=True)
class Config:
    """The provider's own settings (CHAOS_LLM_SCRIPT), rules aside."""

    name: str = "llm-provider"
    models: tuple[str, ...] | None = None
    tokens: int = 16
    first_token_delay: float = 0.02
    token_delay: float = 0.005
    tpm: int = 0
    request_id_header: str = "X-Chaos-Request-Id"
    request_id_field: str | None = "user"
    rules: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, value: Any) -> Config:
        raw = _mapping(value, "script", SPEC_KEYS)
        found: dict[str, Any] = {}
        if "name" in raw:
            found["name"] = _text(raw["name"], "name")
        if raw.get("models") is not None:
            models = raw["models"]
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                raise ScriptError("models: expected a list of model names")
            found["models"] = tuple(models)
        if "tokens" in raw:
            found["tokens"] = _count(raw["tokens"], "tokens", 1)
        for name in ("first_token_delay", "token_delay"):
            if name in raw:
                found[name] = duration(raw[name], name)
        if "tpm" in raw:
            found["tpm"] = _count(raw["tpm"], "tpm", 0, 10**9)
        if "request_id" in raw:
            rid = _mapping(raw["request_id"], "request_id", ("header", "body_field"))
            if "header" in rid:
                found["request_id_header"] = _text(rid["header"], "request_id.header")
            if "body_field" in rid:
                field_name = rid["body_field"]
                found["request_id_field"] = None if field_name is None else _text(
                    field_name, "request_id.body_field")
        rules = raw.get("rules", [])
        parse_rules(rules, "script")  # checked here, so a bad script fails at start-up
        found["rules"] = tuple(rules)
        return cls(**found)


def retry_after_headers(do: Do, now: float) -> dict[str, str]:
    """The Retry-After header in the rule's format (ms: OpenAI's retry-after-ms)."""
    if do.retry_after is None:
        return {}
    if do.retry_after_format == "ms":
        return {"retry-after-ms": str(int(round(do.retry_after * 1000)))}
    if do.retry_after_format == "http-date":
        from email.utils import formatdate

        return {"Retry-After": formatdate(now + math.ceil(do.retry_after), usegmt=True)}
    return {"Retry-After": str(math.ceil(do.retry_after))}
