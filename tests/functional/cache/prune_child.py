"""A pruner process that waits for a start signal and prunes slowly.

Each unlink is slowed down so that two of these, started together, are sure
to overlap; it prints the prune's result as one JSON line.

    python -m tests.functional.cache.prune_child CACHE_DIR MAX_SIZE WATERMARK GO
"""

from __future__ import annotations

import json
import os
import sys
import time

from storaged import concurrency

concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND


def main() -> int:
    from storaged.cache import ObjectCache
    from storaged.cache import Pruner

    cache_dir, max_size, watermark, go = sys.argv[1:5]
    cache = ObjectCache(cache_dir, max_size=int(max_size),
                        low_watermark=float(watermark))
    real_unlink = os.unlink

    def slow_unlink(path, *args, **kw):
        time.sleep(0.001)
        return real_unlink(path, *args, **kw)

    os.unlink = slow_unlink  # type: ignore[assignment]
    while not os.path.exists(go):
        time.sleep(0.001)
    result = Pruner(cache).prune()
    os.unlink = real_unlink
    cache.close()
    print(json.dumps({"locked_out": result.locked_out, "pruned": result.pruned,
                      "errors": result.errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
