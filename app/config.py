"""Configuration: a TOML file of connections, secrets only from the environment.

    [limits]                      # optional, service-wide defaults
    max_file_bytes = 10_000_000
    max_application_bytes = 25_000_000

    [connections.acme]
    connector = "factorial"        # factorial | flatchr | otys | laura
    base_url = "https://api.factorialhr.com"
    credentials_env = "ACME_FACTORIAL_API_KEY"   # the *name* of the variable holding the secret
    timeout_s = 20                 # per HTTP call, kept below the worker's job timeout
    concurrency = 10               # in-flight deliveries for this connection, across workers
    rate_per_s = 5                 # optional: delivery runs started per second, across workers
    status_callback_url = "https://board.example/applyrelay/status"   # optional: ATS status changes
    status_callback_secret_env = "ACME_STATUS_WEBHOOK_SECRET"          # its whsec_... signing secret
    retry_schedule = [15, 60, 300, 1800, 7200, 21600, 43200]
    catalog_ttl_s = 60             # jobs, questions, stages, sources read from the ATS: cached this long
    catalog_stale_s = 3600         # ... and kept this much longer, served (with its age) when the ATS fails
    indeed_secret_env = "ACME_INDEED_SECRET"   # inbound routes' keys: InboundSettings, docs/inbound.md
    api_version = "2026-07-01"     # the connector's settings: FactorialSettings, docs/connectors/

A table's keys are the relay's own (`ConnectionTable`, with the inbound routes' `InboundSettings`)
or the settings of the connector it names (`<Ats>Settings` in connectors/<ats>.py); both are
msgspec Structs that refuse unknown fields. A bad file fails at start with `ConfigError` naming
the key at fault (``connections.acme.concurency: unknown key (did you mean concurrency?)``) and
what it takes, before any process starts.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from app.core import files
from app.core.problems import Problem
from app.net import ssrf
from connectors import CONNECTORS, connector_class
from connectors.base import ConnectionSpec, ConnectorSettings

DEFAULT_SCHEDULE = (15.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 43200.0)
MB = 1_000_000
MAX_TIMEOUT_S = 50.0  # the worker's job timeout (45 s by default) must outlast one call


class ConfigError(ValueError):
    """A configuration problem; the message names the key at fault."""


# ---------------------------------------------------------------------------------------------
# The tables as written in the file


# Integers up to 2**63 - 1: what the stored connection record (msgpack) can hold, so a setting
# past it is refused naming its key instead of failing as the record is written.
PositiveInt = Annotated[int, Meta(gt=0, le=2**63 - 1)]
PositiveNumber = Annotated[float, Meta(gt=0)]
# A retry schedule: a delivery is given up on after its last entry, so a few dozen steps of at
# most 30 days each cover any real schedule; beyond that is a typo (or 1e300 s, past arq's dates).
MAX_RETRIES = 50
RetryDelay = Annotated[float, Meta(gt=0, le=30 * 86_400)]
# A host the SSRF guard lets through (`fetch_allow_hosts`), as the URL's host or host:port is
# compared with it (`ssrf._allowed`: the host as urlsplit gives it, an IPv6 one unbracketed):
# a name or address, never a pattern ("*" would match nothing, silently).
AllowedHost = Annotated[str, Meta(pattern=r"^(?:[A-Za-z0-9_.-]{1,253}(?::[0-9]{1,5})?|[0-9A-Fa-f:.]{2,51})$")]
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]


class LimitsTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[limits]``: the service-wide size limits (a connection may lower or raise its own)."""

    max_file_bytes: PositiveInt = 10 * MB
    max_application_bytes: PositiveInt = 25 * MB


IndeedStatus = Literal[
    "NEW",
    "REVIEW",
    "LIKED",
    "CONTACTED",
    "SCREEN",
    "POSITIVELY_SCREENED",
    "ASSESS_QUALIFICATIONS",
    "VERIFY_ELIGIBILITY",
    "INTERVIEW",
    "BACKGROUND_CHECK",
    "OFFER_MADE",
    "OFFER_DECLINED",
    "HIRED",
    "ONBOARDED",
    "NOT_SELECTED",
    "WITHDRAWN",
    "INCOMPLETE",
    "JOB_INACTIVE",
    "JOB_CLOSED",
    "UNABLE_TO_MAP",
    "DROPPED_DUPLICATE",
    "DROPPED_JOB_EXPIRED",
    "DROPPED_FRAUD_SPAM",
]  # Indeed's IndeedDispositionStatus enum


class InboundSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The keys the inbound routes read (app/web/api/inbound.py, app/intake/boards/; documented
    in docs/inbound.md). A route whose secret variable is not named answers 404."""

    indeed_secret_env: str | None = None
    indeed_jobs: dict[str, str | int] = {}  # Indeed job id -> ATS job id (others: 404)
    indeed_job_field: Literal["jobId", "jobMeta"] = "jobId"
    indeed_questions: dict[str, str | int] = {}  # Indeed question id -> ATS question id
    indeed_source_name: str = "Indeed"
    indeed_max_body_bytes: Count | None = None  # default: the Indeed adapter's own
    webhook_secret_env: str | None = None
    webhook_max_body_bytes: Count | None = None  # default: the application limit, base64-sized
    form_token_env: str | None = None
    form_thank_you_url: str | None = None
    form_honeypot_field: str = "website"
    form_rate_limit: Count = 10  # posts per client IP per window; 0 = off
    form_rate_window_s: Count = 60
    form_trusted_proxy_hops: Count = 0
    form_source_name: str = "Career site"
    inbound_job_check: bool = True  # ask the ATS whether the job exists and is open
    # HelloWork (app/intake/boards/hellowork.py, docs/boards.md)
    hellowork_secret_env: str | None = None
    hellowork_key_header: Annotated[str, Meta(min_length=1, pattern=r"^[A-Za-z0-9-]+$")] = "X-Api-Key"
    hellowork_questions: dict[str, str | int] = {}  # HelloWork question id -> ATS question id
    hellowork_source_name: str = "HelloWork"
    hellowork_max_body_bytes: Count | None = None
    hellowork_status_hosts: tuple[str, ...] = ("ats-partner.hellowork.com",)  # where statusApiUrl may point
    hellowork_status_url: str = "https://ats-partner.hellowork.com/v1/applications/{applicationId}/status"
    # Indeed Disposition Sync (app/tracking/boards.py, docs/boards.md): on when both _env are set
    indeed_disposition_url: str = "https://apis.indeed.com/graphql"
    indeed_token_url: str = "https://apis.indeed.com/oauth/v2/tokens"  # noqa: S105 (a URL)
    indeed_client_id_env: str | None = None
    indeed_client_secret_env: str | None = None
    indeed_ats_name: str = "applyrelay"
    indeed_status_map: dict[str, IndeedStatus] = {}  # ATS stage id / stage name / outcome -> Indeed status
    # Outbound destinations (status callbacks, HelloWork, Indeed; app/tracking/health.py)
    outbound_disable_after_s: PositiveNumber = 5 * 24 * 3600.0  # failing every attempt this long: disabled


class ApplySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[connections.<id>.apply]``: the hosted apply pages (app/web/apply/, docs/apply-pages.md).
    The pages need the connection's `form_token_env` (they post to the forms route)."""

    enabled: bool = False  # opt in: the pages publish the connection's open jobs and their questions
    privacy_text: str | None = None  # the employer's consent wording; a default sentence otherwise
    privacy_url: str | None = None  # the employer's privacy notice, linked beside the consent
    consent_required: bool = True
    consent_days: Annotated[int, Meta(ge=0, le=3650)] = 0  # >0: the consent's expiry sent to the ATS
    success_url: str | None = None  # the browser is sent here (303) once stored; else a thank-you page
    frame_ancestors: tuple[str, ...] = ()  # origins allowed to frame the page (CSP); none: not framable
    css_url: str | None = None  # a stylesheet replacing the minimal one (its origin joins style-src)
    token_ttl_s: Annotated[int, Meta(ge=60, le=7 * 86400)] = 4 * 3600  # the page's form token lifetime
    page_size: Annotated[int, Meta(ge=1, le=100)] = 20  # jobs per page of the career list
    default_lang: Literal["en", "fr", "nl", "fi", "es", "de"] = "en"


class ConnectionTable(InboundSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The relay's own keys of a ``[connections.<id>]`` table; every other key must be a setting
    of the connector it names."""

    connector: str
    base_url: Annotated[str, Meta(description="the ATS API's http(s) URL")] = ""  # default: the connector's
    credentials_env: Annotated[str, Meta(description="the name of the variable holding the secret")] = ""
    timeout_s: Annotated[
        float, Meta(gt=0, le=MAX_TIMEOUT_S, description="seconds per HTTP call, below the worker's job timeout")
    ] = 20.0
    concurrency: PositiveInt = 10
    rate_per_s: PositiveNumber | None = None
    retry_schedule: Annotated[
        tuple[RetryDelay, ...], Meta(min_length=1, max_length=MAX_RETRIES, description="seconds before each retry")
    ] = DEFAULT_SCHEDULE
    retry_jitter: Annotated[float, Meta(ge=0, lt=1)] = 0.2
    max_file_bytes: PositiveInt | None = None  # default: [limits]
    max_application_bytes: PositiveInt | None = None
    fetch_allow_hosts: tuple[AllowedHost, ...] = ()
    fetch_allow_http: bool = False
    allowed_attachment_types: Annotated[
        tuple[files.AttachmentContentType, ...],
        Meta(min_length=1, description="the attachment types taken, as detected from their bytes"),
    ] = files.DEFAULT_ALLOWED
    status_callback_url: str | None = None
    status_callback_secret_env: str | None = None
    # The catalog's cache of ATS reads (app/catalog/, docs/catalog.md): fresh this long, then kept
    # this much longer as the stale answer served when the ATS cannot be reached.
    catalog_ttl_s: Annotated[
        float, Meta(ge=0, le=86400, description="seconds an ATS read (jobs, questions) is served from the cache")
    ] = 60.0
    catalog_stale_s: Annotated[
        float, Meta(ge=0, le=7 * 86400, description="seconds a stale read is kept for when the ATS fails")
    ] = 3600.0
    apply: ApplySettings = ApplySettings()


CONNECTION_KEYS = frozenset(ConnectionTable.__struct_fields__)
# A connection made through the API (app/connections/) holds its secrets sealed in Redis, not in
# variables: these keys name variables, so its settings may not carry them (nor connector/base_url,
# which are fields of the request).
ENV_KEYS = frozenset(k for k in CONNECTION_KEYS if k.endswith("_env"))


# ---------------------------------------------------------------------------------------------
# What the rest of the relay reads


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 10 * MB
    max_application_bytes: int = 25 * MB


@dataclass(frozen=True)
class RetryPolicyConfig:
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.2
    slow_floor_s: float = 60.0  # 429 and timeouts wait at least this long
    retry_after_cap_s: float = 6 * 3600.0

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1


InboundKind = Literal["indeed", "webhook", "form", "hellowork", "status_callback"]
INBOUND_SETTING: dict[str, InboundKind] = {  # the TOML key naming the variable -> the sealed kind
    "indeed_secret_env": "indeed",
    "webhook_secret_env": "webhook",
    "form_token_env": "form",
    "hellowork_secret_env": "hellowork",
    "status_callback_secret_env": "status_callback",
}


@dataclass(frozen=True)
class InboundSecret:
    """One secret of an inbound route, kept sealed by the relay (a connection made through the API;
    docs/connections.md). `expires_at`: the end of its grace period once a newer one replaced it."""

    id: str
    value: str = field(repr=False)
    created_at: float
    expires_at: float | None = None

    def valid(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class Connection:
    id: str
    connector: str
    base_url: str
    credentials: str = field(repr=False)
    credentials_env: str
    settings: ConnectorSettings  # the connector's settings_type, decoded
    timeout_s: float = 20.0
    concurrency: int = 10
    rate_per_s: float | None = None
    status_callback_url: str | None = None
    status_callback_secret: str | None = field(default=None, repr=False)
    retry: RetryPolicyConfig = RetryPolicyConfig()
    limits: Limits = Limits()
    fetch_allow_hosts: tuple[str, ...] = ()
    fetch_allow_http: bool = False
    allowed_attachment_types: tuple[str, ...] = files.DEFAULT_ALLOWED  # app/core/files.py
    inbound: InboundSettings = field(default_factory=InboundSettings)
    catalog_ttl_s: float = 60.0  # docs/catalog.md
    catalog_stale_s: float = 3600.0
    apply: ApplySettings = field(default_factory=ApplySettings)  # docs/apply-pages.md
    # Where it comes from: the TOML file ("file"), or the connections API ("api", docs/connections.md),
    # whose secrets are sealed in Redis: its inbound secrets per kind, and whether the relay keeps
    # its OAuth tokens (then `credentials` is empty and the connector asks app/connections/oauth.py).
    origin: Literal["file", "api"] = "file"
    inbound_secrets: Mapping[str, tuple[InboundSecret, ...]] = field(default_factory=dict, repr=False)
    oauth_tokens: bool = False
    revision: int = 0  # bumped by every change made through the API (connectors are rebuilt)

    def spec(self) -> ConnectionSpec[ConnectorSettings]:
        return ConnectionSpec(
            id=self.id,
            connector=self.connector,
            base_url=self.base_url.rstrip("/"),
            credentials=self.credentials,
            settings=self.settings,
            timeout_s=self.timeout_s,
        )


@dataclass(frozen=True)
class Config:
    connections: Mapping[str, Connection]
    limits: Limits = Limits()
    source: str = "<built-in>"


def unloadable(connections: Mapping[str, Connection], connection_id: str) -> str | None:
    """Why this process cannot build a stored connection (the registry's `unloadable`: a newer
    relay's settings, a key it lacks; docs/connections.md), or None: unknown, loaded, or
    `connections` is a plain mapping (the TOML file's, a test's)."""
    reasons: Mapping[str, str] = getattr(connections, "unloadable", {})
    return reasons.get(connection_id)


def unavailable(connection_id: str) -> Problem:
    """The answer to a request naming such a connection: a wait (503), not a refusal (404); the
    reason stays in the log, a caller is told nothing of the settings."""
    return Problem(
        503,
        "Connection unavailable",
        f"connection {connection_id!r} cannot be used by this relay process now; try again later",
        headers={"Retry-After": "60"},
        code="PLATFORM.UNAVAILABLE",
    )


# ---------------------------------------------------------------------------------------------
# Decoding, and errors that name the key


T = TypeVar("T", bound=msgspec.Struct)

_AT = re.compile(r"^(?P<text>.*?)(?: - at `(?P<key>key)` in `\$(?P<kpath>[^`]*)`| - at `\$(?P<path>[^`]*)`)?$", re.S)
_TOML_TYPES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}


def _decode(raw: Mapping[str, Any], type_: type[T], where: str) -> T:
    try:
        return msgspec.convert(dict(raw), type_, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), type_, where)) from None


def _explain(message: str, type_: type[msgspec.Struct], where: str) -> str:
    """msgspec's ``Expected `int` >= 1 - at `$.concurrency``` as ``<where>.concurrency: must be
    an integer >= 1``, in TOML's words, with what a key takes when the field says."""
    found = _AT.match(message)
    assert found is not None  # the pattern matches any text
    text = found["text"]
    path = found["kpath"] if found["key"] else (found["path"] or "")
    if named := re.fullmatch(r"Object contains unknown field `(.+)`", text):
        return f"{where}{path}.{named[1]}: unknown key"
    if named := re.fullmatch(r"Object missing required field `(.+)`", text):
        path, text = f"{path}.{named[1]}", "required"
    top = re.split(r"[.\[]", path.lstrip("."), maxsplit=1)[0]
    hint = typing.get_type_hints(type_, include_extras=True).get(top)
    described = _description(hint)
    if enum := re.fullmatch(r"Invalid enum value (.+)", text):
        allowed = ", ".join(repr(v) for v in _literals(hint))
        text = f"must be one of {allowed}, got {enum[1]}"
    elif described and "matching regex" in text:
        text, described = f"must be {described}", None  # the pattern itself says less than its description
    elif kind := re.fullmatch(r"Expected `([^`]+)`(.*)", text, re.S):
        rest = re.sub(r"`([^`]+)`", lambda m: _toml_type(m[1]), kind[2])
        text = f"must be {_toml_type(kind[1], expected=True)}{rest}"
    if found["key"]:
        text = "keys " + text
    return f"{where}{path}: {text}" + (f" ({described})" if described else "")


def _toml_type(names: str, *, expected: bool = False) -> str:
    """msgspec's type names as TOML's; an optional key is omitted, never null, so `null` is not
    among what a key expects."""
    kinds = [name.strip() for name in names.split("|") if not (expected and name.strip() == "null")]
    return " or ".join(_TOML_TYPES.get(kind, kind) for kind in kinds)


def _literals(hint: Any) -> list[Any]:
    if typing.get_origin(hint) is Literal:
        return list(typing.get_args(hint))
    return [value for arg in typing.get_args(hint) for value in _literals(arg)]


def _description(hint: Any) -> str | None:
    for arg in typing.get_args(hint):
        if isinstance(arg, Meta) and arg.description:
            return arg.description
        if (inner := _description(arg)) is not None:
            return inner
    return None


def _unknown_key(where: str, key: str, connector: str, settings_type: type[ConnectorSettings]) -> ConfigError:
    own = sorted(settings_type.__struct_fields__)
    close = difflib.get_close_matches(key, [*CONNECTION_KEYS, *own], n=1)
    guess = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(
        f"{where}.{key}: unknown key{guess}. The {connector} settings are {', '.join(own) or 'none'}; "
        "the connection's own keys are in the README's Configuration section and docs/inbound.md"
    )


def _http_url(value: str | None) -> str | None:
    """Why `value` is no http(s) URL a request can be sent to (app/net/ssrf.py's `split_url`,
    the one check of that: a bad port or host would otherwise fail at the first request, or
    crash it); None if it is one."""
    try:
        ssrf.split_url(value or "", schemes=("http", "https"))
    except ssrf.UnsafeURL as exc:
        return str(exc)
    return None


def _connection(
    conn_id: str,
    table: Any,
    env: Mapping[str, str],
    limits: Limits,
    secret_defaults: Mapping[str, str],
    *,
    where: str | None = None,
    sealed: SealedSecrets | None = None,
) -> Connection:
    """One connection from its table. `sealed`: a connection made through the API, whose secrets
    the relay keeps (its table may name no variable); else one of the file, whose secrets are in
    the environment variables its table names."""
    where = where or f"connections.{conn_id}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    if sealed is not None:
        for key in sorted(ENV_KEYS & set(table)):
            raise ConfigError(
                f"{where}.{key}: a connection made through the API keeps its secrets sealed in the relay, "
                "not in environment variables: send them as credentials or inbound secrets (docs/connections.md)"
            )
    connector = table.get("connector")
    if connector not in CONNECTORS:
        raise ConfigError(f"{where}.connector: must be one of {', '.join(sorted(CONNECTORS))}, got {connector!r}")
    settings_type = connector_class(connector).settings_type
    own = settings_type.__struct_fields__
    for key in table:
        if key not in CONNECTION_KEYS and key not in own:
            raise _unknown_key(where, key, connector, settings_type)
    keys = _decode({k: v for k, v in table.items() if k in CONNECTION_KEYS}, ConnectionTable, where)
    try:
        settings = settings_type.from_mapping({k: v for k, v in table.items() if k in own})
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), settings_type, where)) from None
    base_url = keys.base_url or connector_class(connector).default_base_url or ""
    if not base_url:
        raise ConfigError(f"{where}.base_url: required ({connector} has no single API host: the tenant's URL)")
    if why := _http_url(base_url):
        raise ConfigError(f"{where}.base_url: must be an http(s) URL ({why})")
    if sealed is not None:
        credentials = sealed.credentials
        callback_url, callback_secret = _sealed_status_callback(keys, where, sealed)
    else:
        if not keys.credentials_env:
            raise ConfigError(f"{where}.credentials_env: must name the environment variable holding the secret")
        credentials = env.get(keys.credentials_env) or secret_defaults.get(keys.credentials_env) or ""
        if not credentials:
            raise ConfigError(f"{where}.credentials_env: environment variable {keys.credentials_env} is not set")
        callback_url, callback_secret = _status_callback(keys, where, env)
    return Connection(
        id=conn_id,
        connector=connector,
        base_url=base_url,
        credentials=credentials,
        credentials_env=keys.credentials_env,
        settings=settings,
        timeout_s=keys.timeout_s,
        concurrency=keys.concurrency,
        rate_per_s=keys.rate_per_s,
        status_callback_url=callback_url,
        status_callback_secret=callback_secret,
        retry=RetryPolicyConfig(schedule=keys.retry_schedule, jitter=keys.retry_jitter),
        limits=Limits(
            max_file_bytes=keys.max_file_bytes or limits.max_file_bytes,
            max_application_bytes=keys.max_application_bytes or limits.max_application_bytes,
        ),
        fetch_allow_hosts=keys.fetch_allow_hosts,
        fetch_allow_http=keys.fetch_allow_http,
        allowed_attachment_types=keys.allowed_attachment_types,
        inbound=InboundSettings(**{name: getattr(keys, name) for name in InboundSettings.__struct_fields__}),
        catalog_ttl_s=keys.catalog_ttl_s,
        catalog_stale_s=keys.catalog_stale_s,
        apply=_apply(keys.apply, where),
        origin="file" if sealed is None else "api",
        inbound_secrets={} if sealed is None else sealed.inbound,
        oauth_tokens=sealed is not None and sealed.oauth_tokens,
        revision=0 if sealed is None else sealed.revision,
    )


@dataclass(frozen=True)
class SealedSecrets:
    """What the relay keeps sealed for a connection made through the API (app/connections/store.py):
    the connector's credential (the API key or token it sends), whether its OAuth tokens are kept
    instead, and its inbound secrets per kind (INBOUND_SETTING)."""

    credentials: str = field(repr=False)
    oauth_tokens: bool = False
    inbound: Mapping[str, tuple[InboundSecret, ...]] = field(default_factory=dict, repr=False)
    revision: int = 0


def api_connection(
    conn_id: str,
    connector: str,
    base_url: str | None,
    settings: Mapping[str, Any],
    sealed: SealedSecrets,
    limits: Limits = Limits(),
) -> Connection:
    """A connection made through the API (docs/connections.md): its `settings` are the keys of a
    ``[connections.<id>]`` table (the relay's and the connector's, validated alike, errors naming
    ``settings.<key>``), without connector, base_url and the keys that name variables."""
    for key in ("connector", "base_url"):
        if key in settings:
            raise ConfigError(f"settings.{key}: not a setting: it is a field of the connection itself")
    table = {**settings, "connector": connector, **({"base_url": base_url} if base_url else {})}
    return _connection(conn_id, table, {}, limits, {}, where="settings", sealed=sealed)


def _sealed_status_callback(keys: ConnectionTable, where: str, sealed: SealedSecrets) -> tuple[str | None, str | None]:
    """A connection made through the API signs its status callbacks with its newest sealed
    `status_callback` secret; the URL without one is refused."""
    secrets = sealed.inbound.get("status_callback", ())
    if keys.status_callback_url is None:
        return None, None
    if why := _http_url(keys.status_callback_url):
        raise ConfigError(f"{where}.status_callback_url: must be an http(s) URL ({why})")
    if not secrets:
        raise ConfigError(
            f"{where}.status_callback_url: needs its signing secret, the connection's `status_callback` secret"
        )
    return keys.status_callback_url, secrets[0].value


def _apply(apply: ApplySettings, where: str) -> ApplySettings:
    """URLs of the apply page's settings are http(s) (they end up in a CSP and in links)."""
    for name in ("privacy_url", "success_url", "css_url"):
        value = getattr(apply, name)
        if value is not None and (why := _http_url(value)):
            raise ConfigError(f"{where}.apply.{name}: must be an http(s) URL ({why})")
        if value is not None and "@" in urlsplit(value).netloc:  # its origin goes into the CSP
            raise ConfigError(f"{where}.apply.{name}: must not carry a user name or password")
    for origin in apply.frame_ancestors:
        # not split_url: a CSP source may be a wildcard (https://*.example.com), never fetched;
        # but whole, so that nothing (a ';', a space) can add a directive to the page's CSP
        if origin != "'self'" and not _CSP_ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"{where}.apply.frame_ancestors: {origin!r} is not an origin "
                "(https://host[:port], https://*.host, the host in its ASCII form, or 'self')"
            )
    return apply


# An origin as a CSP host-source writes it: scheme, host (a leading *. wildcard, A-labels) or an
# IPv6 literal, an optional port (or *), an optional trailing slash; nothing else.
_CSP_ORIGIN = re.compile(
    r"https?://(?:(?:\*\.)?(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?:[0-9]{1,5}|\*))?/?"
)


def _status_callback(keys: ConnectionTable, where: str, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Both or neither: the URL ATS status changes are posted to, and the env var of its secret."""
    url, secret_env = keys.status_callback_url, keys.status_callback_secret_env
    if url is None and secret_env is None:
        return None, None
    if why := _http_url(url):
        raise ConfigError(
            f"{where}.status_callback_url: must be an http(s) URL ({why}; with status_callback_secret_env)"
        )
    if not secret_env:
        raise ConfigError(f"{where}.status_callback_secret_env: must name the variable holding the whsec_ secret")
    secret = env.get(secret_env)
    if not secret:
        raise ConfigError(f"{where}.status_callback_secret_env: environment variable {secret_env} is not set")
    return url, secret


def parse_config(
    data: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    *,
    source: str = "<dict>",
    secret_defaults: Mapping[str, str] | None = None,
) -> Config:
    env = os.environ if env is None else env
    unknown = set(data) - {"connections", "limits"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown top-level key (expected connections, limits)")
    raw_limits = data.get("limits", {})
    if not isinstance(raw_limits, dict):
        raise ConfigError("limits: must be a table")
    table = _decode(raw_limits, LimitsTable, "limits")
    limits = Limits(max_file_bytes=table.max_file_bytes, max_application_bytes=table.max_application_bytes)
    tables = data.get("connections", {})
    if not isinstance(tables, dict):
        raise ConfigError("connections: must be a table of [connections.<id>] tables")
    connections = {cid: _connection(cid, t, env, limits, secret_defaults or {}) for cid, t in tables.items()}
    return Config(connections=connections, limits=limits, source=source)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"APPLYRELAY_CONFIG: file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(raw, env, source=str(path))


DEMO_SANDBOX_KEY = "sandbox"


def demo_config(env: Mapping[str, str] | None = None) -> Config:
    """The built-in development config: one connection per emulator on its default port.

    The sandbox key defaults to the emulators' public default ("sandbox") because these
    connections only ever reach the local emulators; real connections have no defaults."""
    env = os.environ if env is None else env
    defaults = {
        "APPLYRELAY_SANDBOX_FACTORIAL_KEY": DEMO_SANDBOX_KEY,
        "APPLYRELAY_SANDBOX_FLATCHR_KEY": DEMO_SANDBOX_KEY,
        "APPLYRELAY_SANDBOX_OTYS_KEY": DEMO_SANDBOX_KEY,
        "APPLYRELAY_SANDBOX_LAURA_KEY": DEMO_SANDBOX_KEY,
    }
    ports = {"factorial": 8091, "flatchr": 8092, "otys": 8093, "laura": 8094}
    settings: dict[str, dict[str, Any]] = {"flatchr": {"company_id": "Wy3EOp2NP3p1KMq8", "offerer_id": 75}}
    data = {
        "connections": {
            f"{name}-sandbox": {
                "connector": name,
                "base_url": env.get(f"APPLYRELAY_SANDBOX_{name.upper()}_URL", f"http://127.0.0.1:{port}"),
                "credentials_env": f"APPLYRELAY_SANDBOX_{name.upper()}_KEY",
                **settings.get(name, {}),
            }
            for name, port in ports.items()
        }
    }
    return parse_config(data, env, source="<built-in demo>", secret_defaults=defaults)
