"""A worker process of `imgclf tune --workers N`: reads its :class:`~.study.TuneSpec` as JSON on
standard input and runs trials of the study until it is done (``python -m imgclf.tune.worker``).

A separate interpreter rather than a forked one: a fork of a process that has started PyTorch's
thread pools can hang, and each worker sets its own number of threads before PyTorch starts any.
"""

from __future__ import annotations

import json
import sys

from ..errors import UserError
from .study import TuneSpec, run_worker


def main() -> None:
    spec = TuneSpec(**json.loads(sys.stdin.read()))
    try:
        run_worker(spec)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
