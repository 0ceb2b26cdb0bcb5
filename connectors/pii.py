"""Customer e-mails become salted hashes at the door (PRODUCT.md §4), so no table ever holds plain text."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any
from urllib.parse import unquote

import orjson

SALT_ENV = "ALLIANCE_PII_SALT"
# An address anywhere in a value: plain (`bob@x.com`) or URL-encoded (`bob%40x.com`, `bob%2Btag%40X.COM`). The local
# part leaves out `/ = ? & :` so that in a URL's query (`?email=bob%40x.com&ref=CODE`) only the address matches and
# the rest of the URL, its `ref` included, survives; `\\w` keeps non-ASCII local parts and domains whole.
_EMAIL_IN_TEXT = re.compile(
    r"[\w.%+\-!#$'*^`{|}~]+(?:@|%40)[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}", re.IGNORECASE)


class PiiError(RuntimeError):
    """The PII salt is missing; nothing may be landed without it."""


def pii_salt() -> str:
    """The salt from ALLIANCE_PII_SALT; a missing or blank salt is an error, never a silent default."""
    salt = os.environ.get(SALT_ENV, "")
    if not salt.strip():
        raise PiiError(
            f"{SALT_ENV} is not set: export it (the demo uses the documented salt in config/sandbox.env) "
            "so customer e-mails can be hashed before landing"
        )
    return salt


def customer_key(email: str | None, salt: str) -> str | None:
    """sha256(salt || lower(trim(email))) as hex; blank or missing e-mail (guest checkout) -> None."""
    if email is None or not isinstance(email, str):
        return None
    normalised = email.strip().lower()  # str.strip() removes all Unicode whitespace, incl. U+00A0
    if not normalised:
        return None
    return hashlib.sha256((salt + normalised).encode("utf-8")).hexdigest()


def is_email_key(key: str) -> bool:
    """`email`, `contact_email`, `CustomerEmail`, `billing_email`...: any key ending in `email`."""
    return key.lower().endswith("email")


def scrub(payload: Any, salt: str | None = None) -> Any:
    """A copy of `payload` with every e-mail field, at any depth, replaced by its customer_key.

    Keys ending in `email` (any case) get the key; an address found inside any other string (a note,
    a URL) is replaced by its key too, so free text cannot smuggle an e-mail into a table.
    """
    salt = pii_salt() if salt is None else salt
    return _scrub(payload, salt)


def _scrub(payload: Any, salt: str) -> Any:
    if isinstance(payload, dict):
        out = {}
        for key, value in payload.items():
            if isinstance(key, str) and is_email_key(key):
                out[key] = customer_key(value, salt) if isinstance(value, str) else None
            else:  # an address used as a key is replaced too, as the text path does
                out[_scrub(key, salt) if isinstance(key, str) else key] = _scrub(value, salt)
        return out
    if isinstance(payload, list):
        return [_scrub(item, salt) for item in payload]
    if isinstance(payload, str) and _may_hold_address(payload):
        return replace_addresses(payload, salt)
    return payload


def _may_hold_address(text: str) -> bool:
    return "@" in text or "%40" in text


def _address_key(match: re.Match, salt: str) -> str:
    address = match.group(0)
    return customer_key(unquote(address) if "%" in address else address, salt) or ""


def replace_addresses(text: str, salt: str) -> str:
    """`text` with every e-mail address in it, plain or URL-encoded, replaced in place by its customer_key (the
    key of the decoded address, so `bob%40x.com` in a URL counts as bob@x.com)."""
    return _EMAIL_IN_TEXT.sub(lambda m: _address_key(m, salt), text)


def mask_addresses(text: str, mask: str = "<e-mail>") -> str:
    """`text` with every e-mail address in it, plain or URL-encoded, replaced by `mask` (messages and samples)."""
    return _EMAIL_IN_TEXT.sub(mask, text) if _may_hold_address(text) else text


_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_JSON_SCALAR = re.compile(r"true|false|-?[0-9][0-9.eE+-]*")


def scrub_to_json(payload: Any, salt: str) -> str:
    """`scrub(payload)` serialised as compact JSON, computed on the text: the hot path of landing.

    Why: walking every value of a 5 KB order in Python costs more than fetching and COPYing it. In
    compact JSON `...email":` can only end a key, so e-mail-named keys are found by one scan and their
    string values replaced in place; free-text addresses are then replaced as in `scrub`. Tests check
    the result equals the dict walk's; unusual shapes (an e-mail key holding an object or a number)
    fall back to the walk.
    """
    try:
        text = orjson.dumps(payload).decode()
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits: the slow, general path
        return json.dumps(_scrub(payload, salt), ensure_ascii=False, separators=(",", ":"))
    parts: list[str] = []
    done = 0
    for value_at in _email_key_ends(text):
        if text.startswith("null", value_at):
            continue
        value = _JSON_STRING.match(text, value_at)
        if value is not None:
            replacement = _key_json(value.group(1), salt)
        else:
            value = _JSON_SCALAR.match(text, value_at)  # `verified_email: true`: not an address, dropped as in scrub
            if value is None:  # an object or list under an e-mail key: let the walk decide
                return json.dumps(_scrub(payload, salt), ensure_ascii=False, separators=(",", ":"))
            replacement = "null"
        parts.append(text[done:value_at])
        parts.append(replacement)
        done = value.end()
    if parts:
        parts.append(text[done:])
        text = "".join(parts)
    if _may_hold_address(text):
        # an address right after a JSON escape (`\\nbob@x.com` is a newline then bob@x.com): let the walk decide
        if any(m.start() and text[m.start() - 1] == "\\" for m in _EMAIL_IN_TEXT.finditer(text)):
            return json.dumps(_scrub(payload, salt), ensure_ascii=False, separators=(",", ":"))
        text = replace_addresses(text, salt)
    return text


def _email_key_ends(text: str) -> list[int]:
    """Positions just after every `...email":` (any case) in compact JSON; str.find is far faster than a regex."""
    ends = []
    for tail in ('l":', 'L":'):
        at = text.find(tail, 4)
        while at != -1:
            if text[at - 4:at].lower() == "emai":
                ends.append(at + 3)
            at = text.find(tail, at + 3)
    ends.sort()
    return ends


def _key_json(escaped: str, salt: str) -> str:
    key = customer_key(json.loads(f'"{escaped}"') if "\\" in escaped else escaped, salt)
    return "null" if key is None else f'"{key}"'
