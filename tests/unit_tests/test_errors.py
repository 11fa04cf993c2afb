"""The typed error tree: shape, fields, messages, and pickling."""

from __future__ import annotations

import copy
import pickle

import pytest

import langchain_websim
from langchain_websim.errors import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimConnectionError,
    WebsimError,
    WebsimRateLimitError,
    WebsimResponseError,
    WebsimTimeoutError,
)

URL = "https://websim.ai/api/v1/inference/run_chat_completion"


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (WebsimError, Exception),
        (WebsimAPIError, WebsimError),
        (WebsimRateLimitError, WebsimAPIError),
        (WebsimBlockedError, WebsimAPIError),
        (WebsimConnectionError, WebsimError),
        (WebsimTimeoutError, WebsimConnectionError),
        (WebsimResponseError, WebsimError),
    ],
)
def test_tree_shape(cls: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(cls, parent)


@pytest.mark.parametrize(
    ("cls", "not_parent"),
    [
        (WebsimRateLimitError, WebsimBlockedError),
        (WebsimBlockedError, WebsimRateLimitError),
        (WebsimTimeoutError, WebsimAPIError),
        (WebsimConnectionError, WebsimAPIError),
        (WebsimResponseError, WebsimAPIError),
        (WebsimResponseError, WebsimConnectionError),
        (WebsimAPIError, WebsimConnectionError),
    ],
)
def test_branches_are_distinct(cls: type[Exception], not_parent: type[Exception]) -> None:
    assert not issubclass(cls, not_parent)


def test_errors_are_exported_from_the_package() -> None:
    for cls in (
        WebsimError,
        WebsimAPIError,
        WebsimRateLimitError,
        WebsimBlockedError,
        WebsimConnectionError,
        WebsimTimeoutError,
        WebsimResponseError,
    ):
        assert getattr(langchain_websim, cls.__name__) is cls


def _samples() -> list[WebsimError]:
    return [
        WebsimAPIError(
            "the service answered HTTP 500",
            status_code=500,
            url=URL,
            endpoint="chat",
            content_type="application/json",
            body='{"error": "boom"}',
            attempts=3,
        ),
        WebsimRateLimitError(
            "rate limited",
            retry_after=2.5,
            status_code=429,
            url=URL,
            endpoint="chat",
            content_type="application/json",
            body="{}",
            attempts=2,
        ),
        WebsimBlockedError(
            "blocked",
            status_code=403,
            url=URL,
            endpoint="image",
            content_type="text/html",
            body="<html>cf-chl</html>",
        ),
        WebsimConnectionError("connection failed", url=URL, endpoint="chat", attempts=3),
        WebsimTimeoutError("too slow", timeout=0.2, url=URL, endpoint="image", attempts=2),
        WebsimResponseError(
            "the body is not valid JSON",
            url=URL,
            endpoint="chat",
            status_code=200,
            content_type="application/json",
            body="not json",
        ),
    ]


def test_api_error_fields_and_message() -> None:
    err = _samples()[0]
    assert isinstance(err, WebsimAPIError)
    assert (err.status_code, err.url, err.endpoint, err.attempts) == (500, URL, "chat", 3)
    assert err.content_type == "application/json"
    assert err.body == '{"error": "boom"}'
    text = str(err)
    assert text.startswith("Websim chat: the service answered HTTP 500")
    assert "HTTP 500" in text and "application/json" in text and "after 3 attempts" in text
    assert '{"error": "boom"}' in text


def test_rate_limit_error_carries_retry_after() -> None:
    err = _samples()[1]
    assert isinstance(err, WebsimRateLimitError)
    assert err.retry_after == 2.5
    assert err.status_code == 429
    assert WebsimRateLimitError("x", status_code=429, url=URL).retry_after is None


def test_timeout_error_fields() -> None:
    err = _samples()[4]
    assert isinstance(err, WebsimTimeoutError)
    assert (err.timeout, err.endpoint, err.attempts, err.url) == (0.2, "image", 2, URL)
    assert "after 2 attempts" in str(err)


def test_response_error_fields() -> None:
    err = _samples()[5]
    assert isinstance(err, WebsimResponseError)
    assert err.problem == "the body is not valid JSON"
    assert (err.status_code, err.content_type, err.body) == (200, "application/json", "not json")
    assert err.attempts == 1
    assert "HTTP 200" in str(err) and "'not json'" in str(err)


def test_single_attempt_is_not_mentioned_and_empty_body_is_not_quoted() -> None:
    err = WebsimAPIError("nope", status_code=404, url=URL, endpoint="chat")
    assert str(err) == "Websim chat: nope (HTTP 404)"
    assert str(WebsimError("plain")) == "plain"
    assert WebsimError("plain").attempts == 1


@pytest.mark.parametrize("err", _samples(), ids=lambda e: type(e).__name__)
def test_pickle_round_trip_keeps_every_field(err: WebsimError) -> None:
    err.attempts = 7  # the retry loop fills this in after construction
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is type(err)
    assert str(clone) == str(err)
    assert clone.args == err.args
    assert vars(clone) == vars(err)
    assert clone.attempts == 7


@pytest.mark.parametrize("err", _samples(), ids=lambda e: type(e).__name__)
def test_copy_keeps_fields(err: WebsimError) -> None:
    assert vars(copy.deepcopy(err)) == vars(err)
