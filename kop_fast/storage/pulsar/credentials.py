"""How this proxy's own Pulsar clients authenticate (`--pulsar-auth-token`).

Every `pulsar.Client` the proxy makes (the storage's, each offsets-log partition's, the
subscription mirror's) passes `client_options(token)`; with no token they are
unauthenticated, as before. The token is given as Pulsar's tools take one: the JWT
itself, `token:<JWT>`, or `file:PATH` (read at each new client, so a rotated file is
picked up by the clients made after the rotation)."""

from __future__ import annotations

from pathlib import Path

import pulsar


def token_text(source: str) -> str:
    source = source.strip()
    if source.startswith("token:"):
        return source[len("token:"):]
    if source.startswith("file:"):
        path = source[len("file:"):]
        if path.startswith("//"):
            path = path[2:]
        return Path(path).read_text().strip()
    return source


def client_options(token_source: str | None) -> dict:
    """Keyword arguments of pulsar.Client for the proxy's own identity."""
    if not token_source:
        return {}
    return {"authentication": pulsar.AuthenticationToken(token_text(token_source))}
