"""Connections made at runtime: stored sealed in Redis, seen by every process within a second,
checked against the ATS when made, and the connect page's links and OAuth (docs/connections.md)."""
