"""The scorecard: one self-contained HTML file from published data, rendered by headless Chromium without console
errors; the screenshot is kept in test-artifacts/scorecard.png."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from support.build_schema import make_build_schema

from alliance.alerts import evaluate_alerts, load_rules
from alliance.publish import publish
from alliance.scorecard import write_scorecard
from alliance.warehouse import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"  # `make test` installs it (scripts/ensure_debian_packages.sh)
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
RULES = "rules:\n  - {id: high_refund_rate, kpi: refund_rate, above: 0.25, severity: critical}\n"


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=90, check=False,
        # under scripts/test_clocks.sh the browser runs on the real clock (libfaketime hangs Chromium); the page it
        # renders was written under the shifted one
        env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")},
    )


def test_scorecard_is_self_contained_and_renders_in_chromium(warehouse, tmp_path):
    rules_file = tmp_path / "alerts.yml"
    rules_file.write_text(RULES)
    rules = load_rules(rules_file)
    make_build_schema(warehouse, rules=rules)
    publish(warehouse, run_id="r1")
    assert len(evaluate_alerts(warehouse, rules, run_id="r1")) == 1
    out = write_scorecard(warehouse, tmp_path / "scorecard.html", rules)
    page = out.read_text()
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)  # plotly.js mentions URLs in strings
    assert not re.search(r"""(src|href)=["']https?://""", markup), "the scorecard must not load anything remotely"
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in markup
    for text in ("Active alerts (1)", "high_refund_rate", "northwind owes lumen", "Attribution model spread", "linear",
                 "last_click", "Objectives", "lumen: daily KPIs vs alert thresholds", "Partner programmes",
                 "<th>clawbacks</th>", "<th>held orders</th>", "615.00"):
        assert text in page, text

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "scorecard.png"
    shot.unlink(missing_ok=True)
    dom = _chromium(tmp_path, "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 8, "plotly did not draw the figures"
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    result = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2400", out.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
