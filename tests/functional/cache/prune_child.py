"""A pruner process that waits for a start signal, then prunes.

Its first unlink waits (up to 20 s) until the file RELEASE exists: the test
creates it only once the other pruner has given up, so that two of these
started together are sure to overlap, however busy the machine.  Prints the
prune's result as one JSON line.

    python -m tests.functional.cache.prune_child CACHE_DIR MAX_SIZE WATERMARK GO \
        [RELEASE]
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
    release = sys.argv[5] if len(sys.argv) > 5 else None
    cache = ObjectCache(cache_dir, max_size=int(max_size),
                        low_watermark=float(watermark))
    real_unlink = os.unlink

    def slow_unlink(path, *args, **kw):
        # At most 20 s: should both pruners ever get this far, they go on
        # (and the test sees two that were not locked out).
        deadline = time.monotonic() + 20
        while (release is not None and not os.path.exists(release)
               and time.monotonic() < deadline):
            time.sleep(0.001)
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
