"""Bad CLI arguments and environment: one clear line, a non-zero exit, and nothing written anywhere.

Each case points ALLIANCE_WAREHOUSE_URL at a closed port: if a bad argument reached the warehouse, the command
would fail with a connection error instead of the expected message (arguments are checked first).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.sandbox.env import load_sandbox_env

ROOT = Path(__file__).parents[1]
DEMO = str(ROOT / "config" / "demo.yml")
ALLIANCE = str(Path(sys.executable).with_name("alliance"))
CLOSED = "postgresql://postgres@127.0.0.1:1/nowhere"


@pytest.mark.parametrize(("args", "env", "code", "message"), [
    (["ingest", "--config", "/nope/alliance.yml"], {}, 2, "config file not found"),
    (["ingest", "--config", "{bad_yaml}"], {}, 2, "not valid YAML"),
    (["transform", "--config", DEMO, "--as-of", "2026-13-45"], {}, 2, "--as-of: `2026-13-45` is not a date"),
    (["ingest", "--config", DEMO, "--since", "yesterday"], {}, 2, "--since: `yesterday` is not a date"),
    (["ingest", "--config", DEMO, "--source", 'x"; drop table raw.orders; --', "--since", "2026-01-01"], {}, 2,
     "--source: unknown id(s)"),
    (["transform", "--config", DEMO], {"ALLIANCE_WAREHOUSE_URL": "mysql://u@h/db"}, 3,
     "must start with postgresql://"),
    (["sandbox", "--error-rate", "2"], {}, 2, "every --*-rate must be between 0 and 1"),
    (["warehouse", "explode"], {}, 2, "unknown action `explode`"),
    (["ingest", "--config", DEMO], {"NORTHWIND_TOKEN": ""}, 2, "credentials_env not set for northwind"),
], ids=["missing-config", "bad-yaml", "bad-as-of", "bad-since", "hostile-source", "bad-warehouse-url",
        "rate-out-of-range", "unknown-warehouse-action", "missing-secret"])
def test_bad_cli_input_is_one_clear_line(tmp_path, args, env, code, message):
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("partners: [\n")
    args = [a.replace("{bad_yaml}", str(bad_yaml)) for a in args]
    load_sandbox_env()
    full_env = {**os.environ, "ALLIANCE_WAREHOUSE_URL": CLOSED, "COLUMNS": "200", **env}
    run = subprocess.run([ALLIANCE, *args], capture_output=True, text=True, env=full_env, timeout=60)
    assert run.returncode == code, run.stdout + run.stderr
    assert message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "connection" not in run.stderr.lower()
