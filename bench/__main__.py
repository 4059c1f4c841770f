"""`python -m bench <name>`: pipeline [--only dev] | app | data | footprint | sizes | all | report.

`all` runs every benchmark (app, data and footprint share one scratch deployment with one
backend pod), then regenerates bench/RESULTS.md and the plots. Each benchmark writes
bench/results/<name>.json; `report` only regenerates RESULTS.md from those files.
"""

from __future__ import annotations

import argparse
import os
import sys

NAMES = ("pipeline", "app", "data", "footprint", "sizes", "all", "report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=NAMES, help="which benchmark to run")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for the machine's load average to settle first")
    parser.add_argument("--only", choices=("dev",),
                        help="pipeline: run only this scenario (dev: bench/results/pipeline-dev.json)")
    args = parser.parse_args(argv)
    if args.only and args.name != "pipeline":
        parser.error("--only applies to pipeline")

    from bench import report
    from bench.common import say, wait_quiet

    if args.name == "report":
        report.write()
        return 0
    if not args.no_wait:
        load = wait_quiet()
        say(f"1-minute load average {load} (cores: {os.cpu_count()})")
    if args.name == "sizes":
        from bench import sizes

        sizes.run()
    elif args.name == "pipeline":
        from bench import pipeline

        pipeline.run(args.only)
    elif args.name in ("app", "data", "footprint"):
        import importlib

        importlib.import_module(f"bench.{args.name}").run()
    else:  # all
        from bench import app, data, footprint, pipeline, sizes
        from bench.app import app_stack

        stack = app_stack().up()
        try:
            sizes.run(stack)
            footprint.run(stack)
            app.run(stack)
            data.run(stack)
        finally:
            stack.down()
        pipeline.run()
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
