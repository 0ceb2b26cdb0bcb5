"""The demo's documented sandbox credentials, and the guard that keeps them out of a real alliance.

Why here: config/sandbox.env is the sandbox's public salt and webhook secrets. Only a config served entirely by the
sandbox (`is_demo_config`) may load them; the demo, the sandbox, the local Airflow and the CLI's demo hook ask here.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from alliance.warehouse import PROJECT_ROOT

SANDBOX_ENV = PROJECT_ROOT / "config" / "sandbox.env"


def is_demo_config(config_path: Path | str) -> bool:
    """Whether `config_path` is a demo alliance: every storefront and network is served by the sandbox.

    Why: config/sandbox.env holds the demo's documented salt and webhook secrets; loading them into a real run
    would hash real customers with a public salt. Only a config whose every `base_url` points at the sandbox
    (`${ALLIANCE_SANDBOX_URL...}`, as config/demo.yml does) may load them; a real run sets ALLIANCE_PII_SALT.
    """
    try:
        raw = yaml.safe_load(Path(config_path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(raw, dict):
        return False
    sources = [p for p in raw.get("partners") or [] if isinstance(p, dict) and p.get("platform") != "none"]
    sources += [n for n in raw.get("referral_networks") or [] if isinstance(n, dict)]
    return bool(sources) and all(str(s.get("base_url", "")).startswith("${ALLIANCE_SANDBOX_URL") for s in sources)


def load_sandbox_env() -> None:
    """The sandbox's documented, non-secret credentials, unless the caller set their own: demo paths only (the
    demo, the sandbox, a demo config: `is_demo_config`), never a real run."""
    for line in SANDBOX_ENV.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            os.environ.setdefault(key.strip(), value.strip())
