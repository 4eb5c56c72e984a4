"""ATS connectors, by name. Imported lazily: a deployment loads only the connectors it uses."""

from __future__ import annotations

from typing import Any

from app.core import plugins
from connectors.base import Connector

CONNECTORS: dict[str, str] = {
    "factorial": "connectors.factorial:FactorialConnector",
    "flatchr": "connectors.flatchr:FlatchrConnector",
    "otys": "connectors.otys:OtysConnector",
    "laura": "connectors.laura:LauraConnector",
}


def connector_class(name: str) -> type[Connector[Any]]:
    try:
        target = CONNECTORS[name]
    except KeyError:
        raise KeyError(f"unknown connector {name!r}; known: {', '.join(sorted(CONNECTORS))}") from None
    return plugins.load(target)
