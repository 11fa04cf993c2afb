"""The rows of the fault matrix: each a scripted emulator fault and what the caller gets.

``ANSWERED`` rows are absorbed by the retry loop; ``REFUSED`` rows end the call with a typed
error (and, through ``WebsimImageTool``, a message for the model).  ``test_fault_matrix.py``
runs every row on every surface it applies to; rows that need more than a script and an
expected outcome (memory, cancellation, threads, event loops) are tests there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_websim.errors import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimConnectionError,
    WebsimError,
    WebsimRateLimitError,
    WebsimResponseError,
    WebsimTimeoutError,
)
from tests.integration_tests._faults import TOOL_FAILED, EndpointName

CHALLENGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><div id='cf-chl-widget'></div></body></html>"
)

# --------------------------------------------------------------------------- answered rows


@dataclass(frozen=True)
class Answered:
    """A fault the retry loop absorbs: the call is answered."""

    id: str
    script: dict[str, Any]  # emulator.enqueue(endpoint, **script)
    statuses: list[int | None]  # what the emulator answered, in order (None: dropped)
    settings: dict[str, Any] = field(default_factory=dict)
    min_gap: float = 0.0  # seconds that must pass between the first two requests


ANSWERED = [
    Answered(
        "429-429-200",
        script={"status": 429, "json": {"error": "slow down"}, "times": 2},
        statuses=[429, 429, 200],
        settings={"max_retries": 2},
    ),
    # Backoff alone (retry_base_delay=0.01) would retry after ~0.02 s: only the header
    # can explain a 1 s gap.
    Answered(
        "retry-after-1",
        script={"status": 429, "headers": {"Retry-After": "1"}},
        statuses=[429, 200],
        min_gap=1.0,
    ),
    *(Answered(f"{s}-200", {"status": s}, [s, 200]) for s in (500, 502, 503, 504)),
    Answered("dropped-200", {"drop": True}, [None, 200]),
]


# --------------------------------------------------------------------------- refused rows


@dataclass(frozen=True)
class Refused:
    """A fault that ends the call with a typed error (for the tool: a message)."""

    id: str
    script: dict[str, Any] | None  # emulator.enqueue(endpoint, **script); None: no server
    error: type[WebsimError]  # exactly this type, not a subclass
    statuses: list[int | None]  # what the emulator answered during one call
    fields: dict[str, Any]  # attributes the error must carry
    settings: dict[str, Any] = field(default_factory=dict)
    says: tuple[str, ...] = ()  # in str(error)
    body: tuple[str, ...] = ()  # in error.body
    tool_message: str | None = None  # exactly what the tool tells the model...
    tool_says: tuple[str, ...] = ()  # ...or what that message contains
    endpoints: tuple[EndpointName, ...] = ("chat", "image")
    within: float | None = None  # the longest the call may take, in seconds


def api_error(status: int) -> Refused:
    detail = f"request refused ({status}): unknown field"
    return Refused(
        f"{status}",
        script={"status": status, "json": {"error": detail}},
        error=WebsimAPIError,
        statuses=[status],
        fields={"status_code": status, "attempts": 1},
        settings={"max_retries": 3},
        says=(f"HTTP {status}", detail),
        body=(detail,),
        tool_says=(f"rejected the request with HTTP {status}: ", detail),
    )


def unusable(name: str, script: dict[str, Any], problem: str, *endpoints: EndpointName) -> Refused:
    return Refused(
        f"200-{name}",
        script=script,
        error=WebsimResponseError,
        statuses=[200],  # an answer that arrived is not asked for again
        fields={"status_code": 200, "attempts": 1},
        settings={"max_retries": 3},
        says=(problem,),
        tool_says=("the image service sent an unusable answer (", problem),
        endpoints=endpoints,
    )


ANY: tuple[EndpointName, ...] = ("chat", "image")
CHAT: tuple[EndpointName, ...] = ("chat",)
IMAGE: tuple[EndpointName, ...] = ("image",)
REFUSED = [
    Refused(
        "429-always",
        script={"status": 429, "json": {"error": "slow down"}, "times": 3},
        error=WebsimRateLimitError,
        statuses=[429, 429, 429],
        fields={"status_code": 429, "attempts": 3},
        settings={"max_retries": 2},
        body=("slow down",),
        tool_message=TOOL_FAILED + "rate limited after 3 attempts; wait a minute before retrying.",
    ),
    Refused(
        "retry-after-3600",
        script={"status": 429, "headers": {"Retry-After": "3600"}},
        error=WebsimRateLimitError,
        statuses=[429],
        fields={"status_code": 429, "attempts": 1, "retry_after": 3600},
        settings={"max_retries": 5, "retry_max_delay": 30},
        says=("retry after 3600 s",),
        tool_message=TOOL_FAILED + "rate limited; retry after 3600 s.",
    ),
    *(api_error(status) for status in (400, 404, 422)),
    Refused(
        "403-challenge",
        script={"status": 403, "body": CHALLENGE, "content_type": "text/html"},
        error=WebsimBlockedError,
        statuses=[403],
        fields={"status_code": 403, "attempts": 1},
        settings={"max_retries": 3},
        says=("bot-protection challenge",),
        body=("Just a moment",),
        tool_says=("blocked by a challenge page (HTTP 403)",),
    ),
    unusable(
        "html-page",
        {"body": "<html><body>maintenance</body></html>", "content_type": "text/html"},
        "HTML page",
        *ANY,
    ),
    unusable(
        "invalid-json",
        {"body": '{"content": "cut', "content_type": "application/json"},
        "not valid JSON",
        *ANY,
    ),
    unusable(
        "json-array", {"json": [{"content": "hi"}]}, "expected a JSON object, got an array", *ANY
    ),
    unusable("content-null", {"json": {"content": None}}, "'content' is null", *CHAT),
    unusable("content-number", {"json": {"content": 42}}, "'content' is a number", *CHAT),
    unusable("content-blank", {"json": {"content": " \n "}}, "'content' is empty", *CHAT),
    unusable("no-url", {"json": {"image": "https://cdn.example/x.png"}}, "no 'url' field", *IMAGE),
    *(
        unusable(name, {"json": {"url": url}}, "not an absolute http(s) URL", *IMAGE)
        for name, url in [
            ("url-relative", "/images/relative.png"),
            ("url-javascript", "javascript:alert(document.cookie)"),
            ("url-data", "data:image/png;base64,iVBORw0KGgo="),
        ]
    ),
    Refused(
        "timeout",
        script={"delay": 30, "times": 3},
        error=WebsimTimeoutError,
        statuses=[200, 200, 200],  # what the emulator would have answered, after the delay
        fields={"attempts": 3, "timeout": 0.3},
        settings={
            "timeout": 0.3,
            "max_retries": 2,
            "retry_base_delay": 0.01,
            "retry_max_delay": 30,
        },
        tool_message=TOOL_FAILED + "timed out after 3 attempts of 0.3 s each; try again later.",
        # attempts x timeout + the longest backoff (0.02 s + 0.04 s) + 1 s
        within=3 * 0.3 + 0.06 + 1.0,
    ),
    Refused(
        "nothing-listening",
        script=None,
        error=WebsimConnectionError,
        statuses=[],
        fields={"attempts": 3},
        settings={"max_retries": 2},
        says=("connection failed: 127.0.0.1:{port} refused the connection",),
        tool_message=TOOL_FAILED
        + "could not reach the image service after 3 attempts (127.0.0.1:{port} refused the "
        "connection (nothing accepts connections there)); try again later.",
    ),
]
