"""The catalog's keys of a connection table, typed and refused when wrong (app/config.py), and the
cache policy the catalog derives from them (app/catalog/service.py)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from app.catalog import Catalog
from app.config import ConfigError, parse_config
from tests.support.builders import connection_table

ENV = {"TEST_LAURA_KEY": "sandbox"}


def config(**table: Any) -> Any:
    return parse_config({"connections": {"acme": connection_table("laura", "http://127.0.0.1:1", **table)}}, ENV)


def test_defaults_a_minute_fresh_an_hour_kept() -> None:
    connection = config().connections["acme"]
    assert (connection.catalog_ttl_s, connection.catalog_stale_s) == (60.0, 3600.0)


def test_the_policy_follows_the_connection(redis_url: str) -> None:
    cfg = config(catalog_ttl_s=5, catalog_stale_s=0, timeout_s=30)
    catalog = Catalog(Redis.from_url(redis_url), cfg, lambda _: None)  # no read is made: only the policy
    policy = catalog.policy(cfg.connections["acme"])
    assert (policy.ttl_s, policy.keep_s, policy.lock_s) == (5.0, 0.0, 60.0)  # 2 × 30 + 1, capped at 60
    assert catalog.policy(config(timeout_s=1).connections["acme"]).lock_s == 5.0  # at least 5


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"catalog_ttl_s": -1}, "connections.acme.catalog_ttl_s: must be a number >= 0"),
        ({"catalog_ttl_s": "60"}, "connections.acme.catalog_ttl_s: must be a number"),
        ({"catalog_stale_s": 8 * 86400}, "connections.acme.catalog_stale_s: must be a number <= 604800"),
        ({"catalog_ttl": 60}, "did you mean catalog_ttl_s?"),
    ],
)
def test_a_bad_value_stops_the_start_naming_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(**table)
    assert message in str(caught.value)
