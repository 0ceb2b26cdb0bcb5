"""A real ingest process for the kill tests: `python tests/support/ingest_child.py CONFIG` (SIGKILLed at random)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from alliance.config import load_config  # noqa: E402
from connectors.ingest import ingest_all  # noqa: E402
from support.ingest import FAST  # noqa: E402

if __name__ == "__main__":
    results = ingest_all(load_config(sys.argv[1]), options=FAST)
    for r in results:
        print(r.summary(), flush=True)
    sys.exit(0 if all(r.status == "succeeded" for r in results) else 1)
