"""The registry of platforms: the one place a platform name is turned into what it does.

The poll loop (connectors/ingest.py) asks it for the paginator, the landing (connectors/landing.py) for the
validator and the allow-list, the webhook receiver (alliance/webhooks/) for the webhook scheme. Each platform
is one file: connectors/shopify.py, connectors/woocommerce.py, connectors/network.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from connectors import network, shopify, shopify_graphql, woocommerce
from connectors.minimise import Spec, apply
from connectors.platform import Platform, WebhookScheme
from connectors.records import RecordError, ValidRecord

PLATFORMS: dict[str, Platform] = {p.name: p for p in (shopify.PLATFORM, shopify_graphql.PLATFORM, woocommerce.PLATFORM,
                                                      network.PLATFORM)}
# the webhook route names a platform by its scheme (`/webhooks/network/<id>`): the same platform
_BY_ROUTE: dict[str, Platform] = {p.webhooks.name: p for p in PLATFORMS.values() if p.webhooks is not None}


class UnknownPlatform(ValueError):
    """A platform name alliance has no file for."""


class UnknownEntity(ValueError):
    """No allow-list for this platform and entity: nothing is kept by default (fail closed)."""


def get(name: str) -> Platform:
    """The platform by its config name (`referral_network`) or its webhook route name (`network`)."""
    platform = PLATFORMS.get(name) or _BY_ROUTE.get(name)
    if platform is None:
        raise UnknownPlatform(f"unknown platform `{name}`; known: {', '.join(PLATFORMS)}")
    return platform


def webhook_schemes() -> dict[str, WebhookScheme]:
    """Route name -> webhook scheme, for every platform that sends webhooks."""
    return {name: platform.webhooks for name, platform in _BY_ROUTE.items() if platform.webhooks is not None}


def webhook_route(platform: str) -> str | None:
    """The webhook route (`/webhooks/<route>/<id>`) of a partner on `platform`: its own scheme's, or that of the
    platform its webhooks come through (`webhooks_via`); None when it sends none (or is unknown)."""
    spec = PLATFORMS.get(platform)
    if spec is not None and spec.webhooks is None and spec.webhooks_via:
        spec = PLATFORMS.get(spec.webhooks_via)
    return spec.webhooks.name if spec is not None and spec.webhooks is not None else None


def allow_list(platform: str, entity: str) -> Spec:
    """What may be kept of `platform`'s `entity` (orders, refunds, clicks, or a webhook topic)."""
    try:
        return get(platform).allow_lists[entity]
    except (UnknownPlatform, KeyError):
        raise UnknownEntity(f"no data-minimisation allow-list for platform `{platform}`, entity `{entity}`: "
                            f"add one to the platform's file (connectors/<platform>.py) before landing it") from None


def minimise(platform: str, entity: str, record: Any) -> Any:
    """`record` with only the allow-listed fields of `platform`'s `entity` (orders, refunds, clicks, or a webhook
    topic such as `customers/redact`). A list of records is minimised record by record; a record that is not an
    object is returned unchanged (landing quarantines it and stores no value of it)."""
    return apply(allow_list(platform, entity), record)


@dataclass
class PreparedPage:
    """A page validated and serialised, ready to land (prepared off the landing thread)."""

    good: list[ValidRecord]
    bad: list[tuple[RecordError, object]]


def prepare_page(platform: str, records: list, salt: str) -> PreparedPage:
    """Validate each record with the platform's rules and add the facts landing needs (dates, cancelled)."""
    spec = get(platform)
    good: list[ValidRecord] = []
    bad: list[tuple[RecordError, object]] = []
    for position, record in enumerate(records, start=1):
        try:
            valid = spec.validate(record, position, salt)  # a record passing validation is an object
            good.append(replace(valid, dates=spec.dates(record), cancelled=spec.cancelled(record)))  # type: ignore[arg-type]
        except RecordError as exc:
            bad.append((exc, record))
    return PreparedPage(good, bad)
