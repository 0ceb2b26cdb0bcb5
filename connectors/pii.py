"""Customer e-mails become salted hashes at the door (PRODUCT.md §4), so no table ever holds plain text."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

SALT_ENV = "ALLIANCE_PII_SALT"
_EMAIL_IN_TEXT = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}")


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
            else:
                out[key] = _scrub(value, salt)
        return out
    if isinstance(payload, list):
        return [_scrub(item, salt) for item in payload]
    if isinstance(payload, str) and "@" in payload:
        return _EMAIL_IN_TEXT.sub(lambda m: customer_key(m.group(0), salt) or "", payload)
    return payload
