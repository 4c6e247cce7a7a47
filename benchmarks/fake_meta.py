"""`kaanha fake-meta` with one more option, `--webhook-batch-size N`: status webhooks posted N to a POST.

`python -m benchmarks.fake_meta --webhook-batch-size 50 fake-meta [options...]` runs the CLI command
itself (`kaanha.cli.main`), with only the batch size of the fake it builds changed: the command has no
option for `FakeGraphAPI(webhook_batch_size=...)`, and posts every status alone. Meta batches webhooks
under load (up to 1,000 updates a POST), which at hundreds of messages a second is what a receiver sees.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kaanha.cli.main import app
from kaanha.testing.fake_graph import FakeGraphAPI


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--webhook-batch-size", type=int, default=1)
    options, rest = parser.parse_known_args(argv)
    build = FakeGraphAPI.from_options

    def with_batches(**settings: Any) -> FakeGraphAPI:
        return build(**settings, webhook_batch_size=options.webhook_batch_size)

    FakeGraphAPI.from_options = with_batches  # type: ignore[method-assign]
    app(rest, prog_name="kaanha")


if __name__ == "__main__":
    main(sys.argv[1:])
