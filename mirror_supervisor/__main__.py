"""Entry point of ``mirror-supervisor`` and ``python -m mirror_supervisor``.

The first thing it does is hold SIGHUP back: a reload sent while the program is still importing
its modules would otherwise kill it (SIGHUP's default action). The master takes it over, queued,
once its signal pipe exists; every other command never unblocks it and exits soon anyway.
"""

import signal
import sys


def main() -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
