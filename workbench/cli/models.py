"""``workbench models list``: the model zoo by family, with layer counts."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="the model zoo")
    commands = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="list registered models by family")
    listing.add_argument("--family", choices=("snn", "cnn", "vit"), help="only this family")
    listing.add_argument("--pattern", help="shell-style name filter, e.g. 'sew_*'")
    listing.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    from workbench.models import FAMILIES, list_models, model_info

    families = [args.family] if args.family else list(FAMILIES)
    for family in families:
        names = list_models(family=family, pattern=args.pattern)
        if not names:
            continue
        print(f"{family} ({len(names)} models)")
        for name in names:
            info = model_info(name)
            t = f"T={info.time_steps}" if info.family == "snn" else ""
            print(f"  {name:<20} {len(info.layers):>3} layers  {t:<4} {info.description}")
    return 0
