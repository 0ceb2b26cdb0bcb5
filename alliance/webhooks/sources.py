"""Who may send webhooks, how each platform signs them, and which topics alliance handles.

Signatures are compared as bytes (`hmac.compare_digest` on bytes): a header with non-ASCII bytes is simply a wrong
signature (401), never a TypeError (500).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass

from alliance.config import AllianceConfig, Partner

log = logging.getLogger("alliance.webhooks")


@dataclass(frozen=True)
class Platform:
    name: str  # shopify | woocommerce | network (the route segment)
    signature_header: str
    delivery_header: str
    topic_header: str | None  # None: one implicit topic (network clicks)
    topics: frozenset[str]  # handled topics; anything else from a verified sender is recorded as ignored


SHOPIFY_ORDER_TOPICS = frozenset({"orders/create", "orders/updated"})
WOO_ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
DELETE_TOPICS = frozenset({"orders/delete", "order.deleted"})
COMPLIANCE_TOPICS = frozenset({"customers/redact", "customers/data_request", "shop/redact"})
CLICK_TOPIC = "clicks"

PLATFORMS = {
    "shopify": Platform("shopify", "x-shopify-hmac-sha256", "x-shopify-webhook-id", "x-shopify-topic",
                        SHOPIFY_ORDER_TOPICS | {"orders/delete"} | COMPLIANCE_TOPICS),
    "woocommerce": Platform("woocommerce", "x-wc-webhook-signature", "x-wc-webhook-delivery-id",
                            "x-wc-webhook-topic", WOO_ORDER_TOPICS | {"order.deleted"}),
    "network": Platform("network", "x-alliance-signature", "x-alliance-delivery-id", None,
                        frozenset({CLICK_TOPIC})),
}


@dataclass(frozen=True)
class Source:
    platform: Platform
    source_id: str  # partner id or referral network id
    secret: bytes
    partner: Partner | None = None  # the storefront's config (API base URL, credentials), for refund look-ups


def sign(secret: str | bytes, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, raw body)): Shopify's, WooCommerce's and our network scheme."""
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def signature_ok(source: Source, given: bytes | None, body: bytes) -> bool:
    """The header's raw bytes against the expected base64 digest, both bytes: constant time, never a TypeError."""
    if not given:
        return False
    expected = base64.b64encode(hmac.new(source.secret, body, hashlib.sha256).digest())
    return hmac.compare_digest(given.strip(), expected)


def resolve_sources(config: AllianceConfig) -> dict[tuple[str, str], Source]:
    """(route platform, id) → source with its secret, for every partner/network with a webhook secret set."""
    sources: dict[tuple[str, str], Source] = {}
    for partner in config.storefronts:
        if partner.webhook_secret_env and partner.platform in ("shopify", "woocommerce"):
            secret = os.environ.get(partner.webhook_secret_env, "")
            if secret.strip():
                sources[(partner.platform, partner.id)] = Source(PLATFORMS[partner.platform], partner.id,
                                                                 secret.encode(), partner)
            else:
                log.warning("%s: %s is not set; its webhooks are refused", partner.id, partner.webhook_secret_env)
    for network in config.referral_networks:
        if network.webhook_secret_env:
            secret = os.environ.get(network.webhook_secret_env, "")
            if secret.strip():
                sources[("network", network.id)] = Source(PLATFORMS["network"], network.id, secret.encode())
            else:
                log.warning("%s: %s is not set; its webhooks are refused", network.id, network.webhook_secret_env)
    return sources
