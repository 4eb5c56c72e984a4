"""Loading a registered piece (a router factory, a cron job, a connector, an emulator) by its
``"module:attribute"`` name: registries stay plain lists of strings, and a deployment imports only
what it uses."""

from __future__ import annotations

import importlib
from typing import Any


def load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
