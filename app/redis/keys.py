"""Every Redis key the relay writes, in one table (arq keeps its own in `arq/constants.py`).

A key is built here and nowhere else, so `grep` on this module answers "what is in Redis".
Layout (prefix ``ar:``):

    ar:d:<id>                 Delivery state (msgpack, no PII)
    ar:p:<id>                 payload: StoredApplication or action payload (msgpack, sealed)
    ar:f:<id>:<n>             attachment n as older releases stored it: b"blob:" + a random blob's
                              name, or (before the blob store) its bytes, sealed; now written by no
                              one (a file's blob name is derived from <id> and <n>, app/blobs) and
                              moved out by `applyrelay blobs migrate`
    ar:blobs:pending          blobs being written, their delivery not yet stored (zset "<name>
                              <file key>" → time; the orphan sweep, privacy/blob_sweep.py)
    ar:idem:<hash>            idempotency key → delivery id
    ar:ix:all                 every delivery, scored by creation time
    ar:ix:st:<status>         deliveries per status, scored by last update
    ar:ix:c:<conn> / ar:ix:k:<connector> / ar:ix:ch:<channel> / ar:ix:b:<board> / ar:ix:bid:<board app id>
                              deliveries per connection, connector, origin channel, board and board
                              application id, scored by creation time (they never change after intake)
    ar:ix:cs:<conn>:<status>  deliveries per connection and status, scored by last update
    ar:ix:names:<kind>        the connection / channel / board values seen (for filter menus)
    ar:ix:email:<hmac>        a candidate's deliveries, by keyed hash of the address (privacy/erasure.py)
    ar:erased:<hmac>          erasure tombstone (hash: when, how many)
    ar:keys:index             the sealed index key (privacy/crypto.py)
    ar:m:<metric>             metric counters (hashes), written in the same step as the change they count
    ar:m:ts:<event>:<day>     deliveries delivered / dead-lettered per 5 minutes (the dashboard's chart)
    ar:q:<digest>             a cached list query (operator/query.py)
    ar:bulk:<id>              a bulk retry's progress (hash)
    ar:sess:<hash>            a dashboard session (hash)
    ar:login-fail:<ip>        failed dashboard logins from one client (a counter, 5 minutes)
    ar:lock:<id>              the lease of the worker running the delivery
    ar:paused:<conn>          a connection paused on auth failure (its reason)
    ar:degraded               connections currently degraded (set)
    ar:sem:<conn> / ar:tb:<conn>  the connection's concurrency leases / token bucket (delivery/limits.py)
    ar:wake                   wake tokens for idle workers (delivery/queue.py)
    ar:sync / ar:sync:cursor  delivered applications whose ATS status is polled (tracking/poll.py)
    ar:cb:<id> / ar:cb:due / ar:cb:lock:<id>  status callbacks, their schedule and lease (tracking/callbacks.py)
    ar:board:ctx:<id>         what a board gave to report back to it (HelloWork statusApiUrl, source; no PII)
    ar:br:<id> / ar:br:due / ar:br:lock:<id>  board reports (HelloWork pushes, Indeed dispositions),
                              their schedule and lease (tracking/boards.py)
    ar:br:d:<delivery id>     the board reports of one delivery, in order (the board's view)
    ar:br:cursor:failed       where the scan of dead letters for Indeed's DROPPED_* stopped
    ar:br:dropped:<id>        a delivery's DROPPED_* disposition is queued (once per delivery)
    ar:indeed:token:<conn>    the cached Indeed OAuth access token (until it expires)
    ar:dest:<destination> / ar:dest:all  an outbound destination's health (hash), all destinations
                              (tracking/health.py)
    ar:events                 operational events (message.attempt.exhausted, endpoint.disabled, ...)
    ar:recover:<id>           a "recover failed messages since T" run's progress (hash)
    ar:retention:cursor       where the retention sweep stopped (privacy/retention.py)
    ar:audit                  the audit stream of operator actions (privacy/audit.py)
    ar:rl:form:<digest>:<slot>  the career-form rate limit per client and minute
    ar:cat:<conn>:<kind>:<key>  a cached ATS read (catalog/cache.py: msgpack, its fetched_at inside;
                              kinds job, questions, jobs (a listing page), stages, sources)
    ar:cat-lock:<conn>:<kind>:<key>  the single-flight lock of that read (SET NX PX, a token)
    ar:cat-down:<conn>        the connection's ATS failed a read just now (seconds-long TTL): callers
                              with a budget (intake, pages) do not wait for it (catalog/service.py)
    ar:none                   never written: the intake script's "no marker" placeholder
    ar:conn:r:<id>            a connection made through the API (msgpack: connector, base_url, settings,
                              times, credential kind; no secret; app/connections/store.py)
    ar:conn:s:<id>            its secrets, sealed: credentials and inbound secrets
    ar:conn:ids               the ids of the connections made through the API (set)
    ar:conn:version           bumped by every change to one of them: each process reloads (registry.py)
    ar:conn-lock:<id>         held while its inbound secrets are changed (redis-py's token lock;
                              app/connections/inbound_secrets.py)
    ar:oauth:<id>             a connection's OAuth tokens, sealed (app/connections/oauth.py)
    ar:oauth-lock:<id>        the lock its refresh holds (SET NX PX, a token)
    ar:oauth-state:<hash>     an OAuth authorization under way: its `state` → the connect link
    ar:connect:<hash>         a connect link, by the hash of its token (app/connections/links.py)
    ar:connect-fail:<hash>    the credentials a connect link's page had refused (a counter, the link's life)

and arq's own `arq:job:<job id>` / `arq:queue`, which the store writes in the same transaction as
the state change that needs a run (delivery/queue.py).
"""

from __future__ import annotations

PREFIX = "ar:"

# -- deliveries ----------------------------------------------------------------------------------

IX_ALL = PREFIX + "ix:all"
NO_MARKER = PREFIX + "none"
INDEX_KINDS = ("connection", "connector", "channel", "board", "board_application_id")
_INDEX_CODES = {"connection": "c", "connector": "k", "channel": "ch", "board": "b", "board_application_id": "bid"}
STATE_PATTERN = PREFIX + "d:*"
# what `applyrelay keys rotate` re-seals: payloads, files, connections' secrets and OAuth tokens
SEALED_PATTERNS = (PREFIX + "p:*", PREFIX + "f:*", PREFIX + "conn:s:*", PREFIX + "oauth:*")


def state_key(delivery_id: str) -> str:
    return f"{PREFIX}d:{delivery_id}"


def payload_key(delivery_id: str) -> str:
    return f"{PREFIX}p:{delivery_id}"


def file_key(delivery_id: str, index: int) -> str:
    return f"{PREFIX}f:{delivery_id}:{index}"


BLOBS_PENDING = PREFIX + "blobs:pending"


def idempotency_claim_key(idempotency_hash: str) -> str:
    return f"{PREFIX}idem:{idempotency_hash}"


def lease_key(delivery_id: str) -> str:
    return f"{PREFIX}lock:{delivery_id}"


def status_index(status: str) -> str:
    return f"{PREFIX}ix:st:{status}"


def index_key(kind: str, value: str) -> str:
    """Deliveries with this connection / connector / channel / board / board application id,
    scored by creation time."""
    return f"{PREFIX}ix:{_INDEX_CODES[kind]}:{value}"


def connection_status_index(connection_id: str, status: str) -> str:
    return f"{PREFIX}ix:cs:{connection_id}:{status}"


def names_key(kind: str) -> str:
    return f"{PREFIX}ix:names:{kind}"


# -- metrics and operator views ------------------------------------------------------------------

PURGED_METRIC = PREFIX + "m:purged"  # hash: reason (delivered | dead_letter | erasure) → records purged


def metric_key(name: str) -> str:
    return f"{PREFIX}m:{name}"


def series_key(event: str, day: int) -> str:
    """Per-day hash: 5-minute bucket start (epoch s) → how many deliveries reached `event` then."""
    return f"{PREFIX}m:ts:{event}:{day}"


def query_cache_key(digest: str) -> str:
    return f"{PREFIX}q:{digest}"


def bulk_key(bulk_id: str) -> str:
    return f"{PREFIX}bulk:{bulk_id}"


# -- connections ---------------------------------------------------------------------------------

DEGRADED_SET = PREFIX + "degraded"
SEMAPHORE_PREFIX = PREFIX + "sem:"
BUCKET_PREFIX = PREFIX + "tb:"


def paused_key(connection_id: str) -> str:
    return f"{PREFIX}paused:{connection_id}"


def semaphore_key(connection_id: str) -> str:
    return SEMAPHORE_PREFIX + connection_id


def bucket_key(connection_id: str) -> str:
    return BUCKET_PREFIX + connection_id


# -- workers -------------------------------------------------------------------------------------

WAKE_KEY = PREFIX + "wake"

# -- tracking after delivery ---------------------------------------------------------------------

SYNC_SET = PREFIX + "sync"
SYNC_CURSOR = PREFIX + "sync:cursor"
CALLBACKS_DUE = PREFIX + "cb:due"


def callback_key(callback_id: str) -> str:
    return f"{PREFIX}cb:{callback_id}"


def callback_lease_key(callback_id: str) -> str:
    return f"{PREFIX}cb:lock:{callback_id}"


def board_context_key(delivery_id: str) -> str:
    return f"{PREFIX}board:ctx:{delivery_id}"


BOARD_REPORTS_DUE = PREFIX + "br:due"
BOARD_FAILED_CURSOR = PREFIX + "br:cursor:failed"
DESTINATIONS = PREFIX + "dest:all"
EVENTS_STREAM = PREFIX + "events"


def board_report_key(report_id: str) -> str:
    return f"{PREFIX}br:{report_id}"


def board_report_lease_key(report_id: str) -> str:
    return f"{PREFIX}br:lock:{report_id}"


def delivery_reports_key(delivery_id: str) -> str:
    return f"{PREFIX}br:d:{delivery_id}"


def dropped_marker_key(delivery_id: str) -> str:
    """Set once the delivery's DROPPED_* disposition is queued (two scanners never queue two)."""
    return f"{PREFIX}br:dropped:{delivery_id}"


def indeed_token_key(connection_id: str) -> str:
    return f"{PREFIX}indeed:token:{connection_id}"


def destination_key(destination: str) -> str:
    return f"{PREFIX}dest:{destination}"


def recover_key(recover_id: str) -> str:
    return f"{PREFIX}recover:{recover_id}"


# -- privacy -------------------------------------------------------------------------------------

INDEX_KEY = PREFIX + "keys:index"
RETENTION_CURSOR = PREFIX + "retention:cursor"
AUDIT_STREAM = PREFIX + "audit"


def email_index_key(email_hash: str) -> str:
    return f"{PREFIX}ix:email:{email_hash}"


def tombstone_key(email_hash: str) -> str:
    return f"{PREFIX}erased:{email_hash}"


# -- web -----------------------------------------------------------------------------------------


def session_key(session_hash: str) -> str:
    return f"{PREFIX}sess:{session_hash}"


def login_failures_key(client: str) -> str:
    return f"{PREFIX}login-fail:{client}"


def form_rate_key(digest: str, slot: int) -> str:
    return f"{PREFIX}rl:form:{digest}:{slot}"


# -- catalog -------------------------------------------------------------------------------------

CATALOG_PREFIX = PREFIX + "cat:"


def catalog_key(connection_id: str, kind: str, key: str = "") -> str:
    """One cached ATS read of a connection (app/catalog/cache.py); `key` is a job id or a digest."""
    return f"{CATALOG_PREFIX}{connection_id}:{kind}:{key}"


def catalog_lock_key(connection_id: str, kind: str, key: str = "") -> str:
    return f"{PREFIX}cat-lock:{connection_id}:{kind}:{key}"


def catalog_down_key(connection_id: str) -> str:
    return f"{PREFIX}cat-down:{connection_id}"


# -- connections made at runtime (app/connections/) ------------------------------------------------

CONNECTION_IDS = PREFIX + "conn:ids"
CONNECTIONS_VERSION = PREFIX + "conn:version"


def connection_record_key(connection_id: str) -> str:
    return f"{PREFIX}conn:r:{connection_id}"


def connection_secrets_key(connection_id: str) -> str:
    return f"{PREFIX}conn:s:{connection_id}"


def connection_lock_key(connection_id: str) -> str:
    return f"{PREFIX}conn-lock:{connection_id}"


def oauth_tokens_key(connection_id: str) -> str:
    return f"{PREFIX}oauth:{connection_id}"


def oauth_lock_key(connection_id: str) -> str:
    return f"{PREFIX}oauth-lock:{connection_id}"


def oauth_state_key(state_hash: str) -> str:
    return f"{PREFIX}oauth-state:{state_hash}"


def connect_link_key(token_hash: str) -> str:
    return f"{PREFIX}connect:{token_hash}"


def connect_failures_key(token_hash: str) -> str:
    return f"{PREFIX}connect-fail:{token_hash}"
