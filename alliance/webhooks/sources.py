"""Who may send webhooks, and the signature check they all share (each platform's headers and topics are in
its file, found through connectors/platforms.py).

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
from connectors.platform import WebhookScheme
from connectors.platforms import webhook_route, webhook_schemes

log = logging.getLogger("alliance.webhooks")


# Each platform's scheme (route, headers, topics) is declared in its own file (connectors/shopify.py, ...).
PLATFORMS: dict[str, WebhookScheme] = webhook_schemes()


@dataclass(frozen=True)
class Source:
    platform: WebhookScheme
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
        route = webhook_route(partner.platform)  # shopify_graphql partners' webhooks come as Shopify's (REST bodies)
        if partner.webhook_secret_env and route in PLATFORMS:
            secret = os.environ.get(partner.webhook_secret_env, "")
            if secret.strip():
                sources[(route, partner.id)] = Source(PLATFORMS[route], partner.id, secret.encode(), partner)
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
