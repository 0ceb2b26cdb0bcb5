"""Turn HTTP failures into one-line messages that name the source, the URL and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import orjson
import requests

from connectors.http import ForeignOriginError, retry_body_cut


class SourceError(RuntimeError):
    """A source could not be read; str() is the one-line message for the operator."""


@dataclass(frozen=True)
class SourceRef:
    """What an error message needs to know about the source (never the token itself).

    `credentials_env` says where the secret comes from, for messages: the environment variable's name, or
    `Airflow connection `x`` when the source uses `credentials_conn` (connectors.credentials.credentials_label).
    """

    source_id: str
    credentials_env: str


def bare_url(url: str) -> str:
    """The URL without query or credentials, safe to print."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_response(response: requests.Response, ref: SourceRef) -> None:
    """Raise SourceError with the fix when the response is not a 2xx (retries are already spent)."""
    if response.ok:
        return
    where = bare_url(response.url)
    status = f"{response.status_code} {response.reason or ''}".strip()
    retries = len(getattr(getattr(response.raw, "retries", None), "history", ()) or ())
    after = f" after {retries} retries" if retries else ""
    if response.status_code in (401, 403):
        fix = f"check the token in {ref.credentials_env}"
    elif response.status_code == 404:
        fix = "check base_url in the config (the API path was not found)"
    elif response.status_code == 429:
        fix = "the partner is throttling; lower requests_per_second in the config or rerun later"
    elif response.status_code >= 500:
        fix = "the partner API is failing; rerun later (ingestion resumes from the stored cursor)"
    else:
        detail = response.text[:200].replace("\n", " ")
        fix = f"the request was rejected: {detail}"
    raise SourceError(f"{ref.source_id}: {status} from {where}{after}: {fix}")


def describe_transport_error(exc: requests.RequestException, url: str, ref: SourceRef) -> SourceError:
    """A connection refused / DNS / TLS / timeout failure as a one-line message."""
    where = bare_url(url)
    if isinstance(exc, ForeignOriginError):
        return foreign_origin_error(ref, exc.via, exc.target, exc.allowed)
    if isinstance(exc, requests.exceptions.SSLError):
        return SourceError(f"{ref.source_id}: TLS verification failed for {where}: check the partner's certificate "
                           "and base_url (https)")
    if isinstance(exc, requests.exceptions.Timeout):
        return SourceError(f"{ref.source_id}: timed out talking to {where}: the partner API is slow or down; "
                           "rerun later")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return SourceError(f"{ref.source_id}: {where} kept cutting its answers short: the partner API or the "
                           "network is unstable; rerun later (ingestion resumes from the stored cursor)")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return SourceError(f"{ref.source_id}: cannot reach {where} (connection failed): check base_url in the "
                           "config and that the partner API is up")
    return SourceError(f"{ref.source_id}: request to {where} failed: {type(exc).__name__}")


def foreign_origin_error(ref: SourceRef, via: str, target: str, allowed: str) -> SourceError:
    """The message for a link or redirect to another scheme, host or port than base_url (credentials stay home)."""
    return SourceError(f"{ref.source_id}: refused {via} to {bare_url(target)}: another scheme, host or port than "
                       f"base_url ({bare_url(allowed)}), and the partner's credentials are only sent to base_url; "
                       "if the partner really moved its API, set base_url in the config to the new address")


def get_json(session: requests.Session, url: str, ref: SourceRef, **kwargs) -> tuple[object, requests.Response]:  # noqa: ANN003
    """GET url and decode JSON, turning every failure into a SourceError."""
    try:
        response = retry_body_cut(session, url, **kwargs)
    except requests.RequestException as exc:
        raise describe_transport_error(exc, url, ref) from None
    check_response(response, ref)
    try:
        return orjson.loads(response.content), response
    except orjson.JSONDecodeError:
        pass
    try:  # orjson refuses what the stdlib reads (integers beyond 64 bits, say)
        return response.json(), response
    except ValueError:
        raise SourceError(f"{ref.source_id}: the response from {bare_url(response.url)} is not JSON: check base_url "
                          "in the config") from None
