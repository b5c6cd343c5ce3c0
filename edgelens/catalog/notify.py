"""Tell running workers that the catalog changed, so they apply it within milliseconds.

The change itself is in the catalog's change log (written in the same transaction);
this Redis message is only a wake-up. If Redis is away the change is not lost: workers
also look at the log every ``worker.catalog_poll_s``. A PostgreSQL catalog needs none:
its write transactions NOTIFY the workers themselves on commit.
"""

from __future__ import annotations

import logging

from edgelens.catalog.store import CatalogStore
from edgelens.wire.names import CATALOG_CHANNEL

logger = logging.getLogger(__name__)


def notify_catalog_changed(*, store: CatalogStore, redis_url: str) -> bool:
    """Publish the newest change's sequence number; False (and a warning) if Redis is away."""
    if store.notifies_followers:
        return True
    import redis  # the [cloud]/[web] extra: a device install imports this module without it

    client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        client.publish(CATALOG_CHANNEL, str(store.last_change))
        return True
    except redis.RedisError as exc:
        logger.warning("could not notify workers (%s); they will poll the change log", exc)
        return False
    finally:
        client.close()
