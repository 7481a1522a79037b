"""``pgq run`` without its command-line parsing, which fails in pgqueuer 1.6.0 with the
typer release pip resolves (its log-level option reaches the logger as a plain string).

Same call as the CLI makes: ``pgqueuer.run(factory, ...)`` (the supervisor), with the
pgqueuer logger at WARNING. ``python -m bench.peers.pgqueuer_worker BATCH_SIZE``.
"""

import asyncio
import logging
import sys
from datetime import timedelta

from pgqueuer import run

from bench.peers.pgqueuer_app import factory

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(factory, batch_size=int(sys.argv[1]), dequeue_timeout=timedelta(seconds=30)))
