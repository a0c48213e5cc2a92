"""``workbench cache list`` and ``workbench cache clear``: the activation-statistics cache."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("cache", help="the activation-statistics cache")
    commands = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="list cache entries (key, model, layer, size, date)")
    listing.add_argument("--dir", help="cache folder (default: $WORKBENCH_CACHE/activations)")
    listing.set_defaults(func=_list)
    clear = commands.add_parser("clear", help="remove cache entries")
    clear.add_argument("--dir", help="cache folder (default: $WORKBENCH_CACHE/activations)")
    clear.add_argument("--model", help="only this model's entries")
    clear.set_defaults(func=_clear)


def _list(args: argparse.Namespace) -> int:
    from workbench.activations.cache import StatsCache

    cache = StatsCache(args.dir)
    rows = cache.entries()
    print(f"{cache.root}: {len(rows)} entries, {sum(r['size'] for r in rows) / 2**20:.1f} MiB")
    for row in rows:
        step = "" if row["time_step"] is None else f" t={row['time_step']}"
        print(f"{row['key'][:16]}  {row['model']:<18} {row['layer'] + step:<32} "
              f"{row['size'] / 2**20:8.2f} MiB  {row['created']}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from workbench.activations.cache import StatsCache

    from workbench.errors import ValidationError

    cache = StatsCache(args.dir)
    if args.model is not None:
        models = sorted({row["model"] for row in cache.entries()})
        if args.model not in models:
            raise ValidationError(
                f"no cache entry matched --model {args.model!r} in {cache.root}; nothing removed "
                f"(models with entries: {', '.join(models) if models else 'none, the cache is empty'})"
            )
    removed = cache.clear(model=args.model)
    print(f"removed {removed} entries from {cache.root}")
    return 0
