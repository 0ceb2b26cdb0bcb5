"""Test helpers shared by several test files (no tests here): the three-platform ingest alliance (`support.ingest`),
the real ingest process the kill tests SIGKILL (`support/ingest_child.py`), a loopback HTTPS API serving recorded
partner payloads (`support.loopback_api`) and a tiny contract-shaped build schema for the gate, publish and alert
tests (`support.build_schema`). The independent oracle stays in tests/oracle.py (and tests/oracle_compare.py)."""
