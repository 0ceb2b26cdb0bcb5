"""Sandbox partner APIs: a deterministic alliance world served over real HTTP (see world.py, server.py)."""
