"""The connection settings, defined once for ``WebsimClient``, ``ChatWebsim`` and the tool.

``ConnectionSettings`` is a pydantic model whose fields and validators are inherited by the
two LangChain classes (as fields users set) and by ``WebsimSettings``, the frozen copy a
``WebsimClient`` keeps.  A new setting is one field here; the classes pick it up.

The settings survive pickling (spawn workers, Ray): everything is plain data, except an
``ssl.SSLContext``, which cannot be pickled -- ``ca_bundle`` (a PEM file path) is the form
that travels, and pickling an object holding a context fails loudly instead of dropping it.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    ValidationError,
    field_validator,
    model_validator,
)

from langchain_websim import _wire
from langchain_websim._rate_tuning import RateTuning
from langchain_websim._transport import validate_proxy

__all__ = [
    "SETTING_NAMES",
    "ConnectionSettings",
    "WebsimSettings",
    "check_base_url",
    "normalize_base_url",
    "resolve_base_url",
    "validate_headers",
]


def resolve_base_url(base_url: str | None) -> str:
    # An explicit empty string is a mistake to report, not a request for the default.
    if base_url is not None:
        return base_url
    return os.environ.get(_wire.BASE_URL_ENV) or _wire.DEFAULT_BASE_URL


def check_base_url(base_url: str | None) -> str:
    """The base URL to use: ``None`` resolved (``resolve_base_url``), then validated."""
    return normalize_base_url(resolve_base_url(base_url))


def normalize_base_url(base_url: str) -> str:
    """Validate a base URL and drop any trailing slash; only http(s) hosts are accepted.

    Everything a connection needs is checked here, so a typo fails when the object is made,
    not later as a vague "connection error": the scheme, the host, a numeric port in range,
    and no white space or control characters (CR/LF would also forge header lines).
    """
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("base_url must be a non-empty http(s) URL, e.g. 'https://api.websim.com'")
    value = base_url.strip()
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(
            f"base_url must not contain white space or control characters, got {base_url!r}"
        )
    try:
        parts = urlsplit(value)
        port = parts.port  # a port that is not a number in 0-65535 raises here
    except ValueError as exc:
        raise ValueError(f"base_url {base_url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an absolute http:// or https:// URL, got {base_url!r}")
    if port == 0:
        raise ValueError(f"base_url has port 0, which cannot be connected to: {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not carry a query or fragment, got {base_url!r}")
    return value.rstrip("/")


def validate_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Extra headers from the caller: names are HTTP tokens, values carry no control
    characters (CR/LF would forge header lines; aiohttp refuses the others only at send time,
    naming no header)."""
    if headers is not None and not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of names to values, got {headers!r}")
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
            raise ValueError(
                f"header name {name!r} is not a valid HTTP token (letters, digits, '-', ...; "
                "no spaces, ';', ':' or control characters)"
            )
        if not isinstance(value, str):
            # ValueError, as for every other setting: pydantic reports it as a ValidationError.
            raise ValueError(
                f"header {name!r} must have a string value, got {type(value).__name__}"
            )
        problem = _wire.header_value_problem(name, value)
        if problem is not None:
            raise ValueError(problem)
        out[name] = value
    return out


_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class ConnectionSettings(BaseModel):
    """How to reach Websim: host, timeouts, retries, proxy, TLS and the connection pool."""

    base_url: str = Field(default_factory=lambda: resolve_base_url(None), validate_default=True)
    """Service root; default ``$WEBSIM_BASE_URL``, else the public Websim host."""
    timeout: float = Field(default=120.0, gt=0, allow_inf_nan=False, strict=True)
    """Seconds allowed for each attempt (connect, send and read the whole answer)."""
    max_retries: int = Field(default=2, ge=0, strict=True)
    """Retries after the first attempt, for 408/409/429/5xx, connection errors, timeouts."""
    retry_base_delay: float = Field(default=1.0, ge=0, allow_inf_nan=False, strict=True)
    """Backoff before retry n is ``min(retry_max_delay, base * 2**n)`` less up to 25 % jitter."""
    retry_max_delay: float = Field(default=30.0, ge=0, allow_inf_nan=False, strict=True)
    """Cap on any wait; a longer ``Retry-After`` fails the call at once."""
    proxy: str | None = Field(default=None, repr=False)
    """``http://[user:pass@]host:port`` proxy (kept out of ``repr``: it may hold a password)."""
    headers: dict[str, str] | None = None
    """Extra request headers, added to (and overriding) the browser-like defaults."""
    max_connections: int = Field(default=100, ge=1, strict=True)
    """Size of the connection pool of each event loop."""
    adaptive_rate: bool = Field(default=True, strict=True)
    """Learn the rate each endpoint accepts from its 429s and pace requests to it (shared by
    everything using one client); ``False`` sends at once and only retries, as before."""
    rate_limit_deadline: float = Field(default=600.0, gt=0, allow_inf_nan=False, strict=True)
    """Seconds one call may spend waiting out the service's rate limit while the service is
    still accepting some requests; past it the call fails with ``WebsimRateLimitError``."""
    # An instance only (checked, not rebuilt): a dict would be a second spelling of it.
    rate_tuning: InstanceOf[RateTuning] | None = None
    """The adaptive rate control's constants (``langchain_websim.RateTuning``, frozen) for
    this client only; ``None`` keeps the defaults.  Ignored with ``adaptive_rate=False``."""
    ca_bundle: str | None = None
    """Path of a PEM file of CA certificates to trust (e.g. a private CA); survives pickling."""
    ssl_context: ssl.SSLContext | None = Field(default=None, exclude=True, repr=False)
    """An ``ssl.SSLContext`` to verify servers with; cannot be pickled (use ``ca_bundle``)."""

    # Assignments are checked by ``ClientOwner`` (the LangChain classes); a client's copy,
    # ``WebsimSettings``, is frozen.
    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("base_url", mode="before")
    @classmethod
    def _check_base_url(cls, value: Any) -> str:
        return check_base_url(value)

    @field_validator("proxy", mode="before")
    @classmethod
    def _check_proxy(cls, value: Any) -> str | None:
        return validate_proxy(value)

    @field_validator("headers", mode="before")
    @classmethod
    def _check_headers(cls, value: Any) -> dict[str, str] | None:
        return None if value is None else validate_headers(value)

    @field_validator("ca_bundle")
    @classmethod
    def _check_ca_bundle(cls, value: str | None) -> str | None:
        if value is not None:
            load_ca_bundle(value)  # fail now, not at the first HTTPS call
        return value

    @field_validator("ssl_context")
    @classmethod
    def _check_ssl_context(cls, value: ssl.SSLContext | None) -> ssl.SSLContext | None:
        # A context is a place to add trust (a private CA), not a way to switch it off.
        if value is not None and (value.verify_mode == ssl.CERT_NONE or not value.check_hostname):
            raise ValueError(
                "ssl_context does not verify certificates (verify_mode CERT_NONE or "
                "check_hostname off); Websim calls always verify -- add a CA with ca_bundle"
            )
        return value

    @model_validator(mode="after")
    def _one_trust_source(self) -> Any:
        if self.ca_bundle is not None and self.ssl_context is not None:
            raise ValueError("pass ca_bundle or ssl_context, not both")
        return self

    def check_picklable(self, owner: str) -> None:
        """Refuse to pickle ``owner`` (its description) while it holds an SSL context."""
        if self.ssl_context is not None:
            raise TypeError(
                f"{owner} holds an ssl.SSLContext, which cannot be pickled or sent to another "
                "process; pass ca_bundle='/path/to/ca.pem' instead, which travels with it"
            )

    def connection_settings(self) -> dict[str, Any]:
        """The settings as keyword arguments for ``WebsimClient``/``WebsimSettings``."""
        return {name: getattr(self, name) for name in SETTING_NAMES}


SETTING_NAMES: tuple[str, ...] = tuple(ConnectionSettings.model_fields)


class WebsimSettings(ConnectionSettings):
    """The validated, immutable settings a ``WebsimClient`` runs with."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    @classmethod
    def build(cls, **settings: Any) -> WebsimSettings:
        """Validate plain keyword arguments; a wrong type raises ``TypeError``, a wrong value
        ``ValueError`` -- what a Python API raises, rather than pydantic's error type."""
        try:
            return cls(**settings)
        except ValidationError as exc:
            raise _plain_error(exc) from None

    def shared_key(self) -> tuple[Any, ...]:
        """Equal for settings that may share one client (an SSL context by identity)."""
        return tuple(
            tuple(sorted(value.items())) if isinstance(value, dict) else value
            for value in (getattr(self, name) for name in SETTING_NAMES)
        )


def load_ca_bundle(path: str) -> ssl.SSLContext:
    """A verifying SSL context that trusts the CA certificates in ``path`` as well."""
    if not isinstance(path, str) or not path:
        raise ValueError("ca_bundle must be the path of a PEM file of CA certificates")
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"ca_bundle {path!r} cannot be loaded as PEM CA certificates: {exc}"
        ) from None


_TYPE_ERRORS = ("_type", "is_instance_of", "_parsing")


def _plain_error(exc: ValidationError) -> Exception:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    message = str(first["msg"]).removeprefix("Value error, ")
    text = message if message.startswith(field) else f"{field}: {message}"
    if first["type"].endswith(_TYPE_ERRORS) and first["type"] != "finite_number":
        return TypeError(text)
    return ValueError(text)
