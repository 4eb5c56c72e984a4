"""Several Redis writes as one atomic call: MULTI/EXEC's guarantee at the cost of one command.

redis-py's transaction pipeline packs, queues and parses every command in Python: a delivery's
status change is ~15 of them (state, two status indexes, six per-connection sets, metrics), and
those pipelines were a tenth of the worker's CPU in bench P2. A `CommandBatch` records the same
commands and sends them as the arguments of one Lua script, which Redis runs atomically: no
other client runs in between, and the AOF logs its writes as one transaction. Unlike EXEC, a
command that fails (only a key of the wrong type could) stops the ones after it, and Redis rolls
nothing back: callers put the writes that must agree first (a delivery's state and its job).
Keys travel as arguments, not as KEYS: right on one Redis or under Sentinel (what the relay
supports, see app/redis/client.py), not on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

# A Lua function, also part of other scripts (app/delivery/store.py's start of a run): runs the
# commands in ARGV from index `i` on: for each, its number of words, then the words. The one
# pseudo-command, DELIFEQ key value, deletes the key if it holds the value (a lease given back).
RUN_FUNCTION = """
local function run_batch(i)
  while i <= #ARGV do
    local n = tonumber(ARGV[i])
    if ARGV[i + 1] == 'DELIFEQ' then
      if redis.call('GET', ARGV[i + 2]) == ARGV[i + 3] then redis.call('DEL', ARGV[i + 2]) end
    else
      redis.call(unpack(ARGV, i + 1, i + n))
    end
    i = i + n + 1
  end
end
"""
BLOB_TTL_MS = 3_600_000  # a blob's TTL until the script that owns it has run (and PERSISTed it)
_RUN = RUN_FUNCTION + "run_batch(1)\nreturn 1\n"


class CommandBatch:
    """The write commands of one transaction, in order; the subset of a pipeline's methods the
    store uses (so helpers written against a pipeline take a batch as well)."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    def _add(self, *words: Any) -> None:
        self.args.append(len(words))
        self.args.extend(words)

    def set(self, key: str, value: bytes | str) -> None:
        self._add("SET", key, value)

    def psetex(self, key: str, ms: int, value: bytes | str) -> None:
        self._add("PSETEX", key, ms, value)

    def delete(self, *keys: str) -> None:
        if keys:
            self._add("DEL", *keys)

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        words: list[Any] = []
        for member, score in mapping.items():
            words += [score, member]
        if words:
            self._add("ZADD", key, *words)

    def zrem(self, key: str, *members: str) -> None:
        if members:
            self._add("ZREM", key, *members)

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        self._add("HINCRBY", key, field, amount)

    def hincrbyfloat(self, key: str, field: str, amount: float) -> None:
        self._add("HINCRBYFLOAT", key, field, amount)

    def expire(self, key: str, seconds: int) -> None:
        self._add("EXPIRE", key, seconds)

    def lpush(self, key: str, *values: bytes | str) -> None:
        self._add("LPUSH", key, *values)

    def ltrim(self, key: str, start: int, end: int) -> None:
        self._add("LTRIM", key, start, end)

    def delete_if_equal(self, key: str, value: str) -> None:
        """DEL `key` if it holds `value` (a lease given back by its holder only)."""
        self._add("DELIFEQ", key, value)


class BatchRunner:
    """Runs batches on one client (the script is loaded again after a Redis restart)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = redis.register_script(_RUN)

    async def execute(self, batch: CommandBatch, blobs: Mapping[str, bytes] | None = None) -> None:
        """`blobs`: large values (file bytes) SET beside the batch, in the same transaction; the
        batch keeps them (PERSIST) as its last commands."""
        args = [*batch.args, *(word for key in blobs or {} for word in (2, "PERSIST", key))]
        if args:
            await call_with_blobs(self.redis, self._script, [], args, blobs or {})


async def call_with_blobs(
    redis: Redis, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any], blobs: Mapping[str, bytes]
) -> Any:
    """`script(keys, args)` and a plain SET of each blob, in one MULTI/EXEC: one round trip.

    Large values stay out of the script's arguments: Redis copies every argument of a script
    into Lua, ~170 us for 100 KB against ~2 us for a SET (a CV per intake made Redis the
    bottleneck of bench P1). The SETs run first, with a TTL (BLOB_TTL_MS): the script PERSISTs
    the blobs it keeps and DELs the others, so a transaction whose script failed leaves nothing
    behind for good (EXEC still applies the SETs when the script errors)."""
    if not blobs:
        return await script(keys=keys, args=args)
    for _ in range(2):
        pipe = redis.pipeline(transaction=True)
        for key, value in blobs.items():
            pipe.set(key, value, px=BLOB_TTL_MS)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        results = await pipe.execute(raise_on_error=False)
        outcome = results[-1]
        if isinstance(outcome, NoScriptError):
            # Redis restarted (scripts are not persisted): load it and run the transaction again;
            # the SETs it already applied are written again, to the same keys.
            await redis.script_load(script.script)
            continue
        for result in results:
            if isinstance(result, Exception):
                raise result
        return outcome
    raise NoScriptError("the script vanished again right after it was loaded")
