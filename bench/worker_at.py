"""The relay's worker with another `max_jobs` (P2 latency-bound: what raising the default costs).

python -m bench.worker_at MAX_JOBS
"""

from __future__ import annotations

import sys

from app.log import configure
from app.net.event_loop import use_uvloop
from app.settings import load_settings
from app.worker import create_worker

if __name__ == "__main__":
    configure()
    settings = load_settings()
    use_uvloop()
    create_worker(settings, max_jobs=int(sys.argv[1])).run()
