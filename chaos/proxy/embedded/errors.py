"""The one error type of the control API.

Every refusal carries its HTTP status so that the HTTP layer renders it as the
real Toxiproxy does (``{"error": ..., "status": N}``) without each handler
repeating the mapping.
"""

from __future__ import annotations

from urllib.parse import quote

MAX_NAME = 256 * 1024  # percent-encoded bytes; a proxy and a toxic name fit one request line


class ApiError(Exception):
    """A request the server refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int, close: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.close = close  # end the HTTP connection after answering

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


def bad_request(message: str) -> ApiError:
    return ApiError(message, 400)


PROXY_NOT_FOUND = "proxy not found"
TOXIC_NOT_FOUND = "toxic not found"
PROXY_EXISTS = "proxy already exists"
TOXIC_EXISTS = "toxic already exists"


def check_name(name: str, what: str = "proxy") -> str:
    """Refuse a name too long to be addressed later in a URL (GET or DELETE).

    The real server takes any length but reads at most 1 MiB of request line and
    headers, so a longer name can be created there and never fetched or deleted."""
    if len(quote(name, safe="")) > MAX_NAME:
        raise bad_request(f"{what} name is too long ({len(name)} characters; at most "
                          f"{MAX_NAME} bytes once percent-encoded for a URL)")
    return name
