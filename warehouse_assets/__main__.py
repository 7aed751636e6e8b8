"""Command line: `python -m warehouse_assets migrate | demo`."""

from __future__ import annotations

import argparse
import logging
import sys


def _migrate(_: argparse.Namespace) -> int:
    from warehouse_assets.lib.warehouse import Warehouse, apply_migrations

    warehouse = Warehouse()
    with warehouse.session(migrate=False) as client:
        applied = apply_migrations(client, warehouse.database)
    print(f"{warehouse.describe()}: " + (f"applied {', '.join(applied)}" if applied else "schema up to date"))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from warehouse_assets.demo import run_demo

    return run_demo(ui_port=args.port, simulator_port=args.simulator_port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m warehouse_assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "migrate", help="apply pending schema migrations (sql/migrations) to WAREHOUSE_URL"
    ).set_defaults(func=_migrate)
    demo = sub.add_parser(
        "demo", help="offline demo: exchange simulator + Dagster UI on the embedded warehouse"
    )
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port on 127.0.0.1 (default 3000)")
    demo.add_argument(
        "--simulator-port", type=int, default=8700, help="simulator port on 127.0.0.1 (default 8700)"
    )
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
