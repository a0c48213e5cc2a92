"""``workbench data list | fetch NAME | info NAME``: see, fetch and describe datasets."""

from __future__ import annotations

import argparse

from workbench.data.fetch import fetch
from workbench.data.manifest import available_manifests, read_manifest
from workbench.data.registry import load


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="list, fetch and describe neural datasets")
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="name the datasets that have a manifest")
    listing.set_defaults(func=_list)

    for name, func, text in (("fetch", _fetch, "download (or copy from a mirror) and verify"),
                             ("info", _info, "print counts, regions, reliability and citation")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("name", help="dataset name (see `workbench data list`) or manifest path")
        sub.add_argument("--mirror", metavar="DIR", default=None,
                         help="copy files from DIR (laid out like ../shared/data) instead of "
                              "downloading; default $WORKBENCH_DATA_MIRROR")
        if name == "info":
            sub.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                             help="loader option, e.g. -o session=201025 (repeatable)")
        sub.set_defaults(func=func)


def _list(args: argparse.Namespace) -> int:
    for name, path in available_manifests().items():
        manifest = read_manifest(path)
        print(f"{name:40s} {manifest.species:16s} {', '.join(manifest.regions)}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.name)
    if manifest.loader == "allen_neuropixels":  # downloaded by allensdk when loaded: say what
        from workbench.data.loaders.allen import download_plan

        print(download_plan(manifest))
        return 0
    paths = fetch(manifest, mirror=args.mirror, progress=True)
    for rel_path, path in paths.items():
        print(f"ok  {rel_path} -> {path}")
    return 0


def _parse_options(pairs: list[str]) -> dict:
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, found {pair!r}")
        options[key] = yaml.safe_load(value) if key != "session" else value
    return options


def _info(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.name)
    dataset = load(args.name, mirror=args.mirror, progress=True, **_parse_options(args.option))
    summary = dataset.summary()
    print(f"{manifest.name}: {manifest.description}")
    print(f"stimuli: {summary['n_stimuli']}")
    for region, entry in summary["regions"].items():
        line = f"region {region} ({entry['species']}): "
        if entry["kind"] == "rdm":
            line += "published RDM only"
        else:
            line += f"{entry['n_neuroids']} neuroids kept of {entry['n_recorded']} recorded"
            if "repeats_per_stimulus" in entry:
                low, high = entry["repeats_per_stimulus"]
                line += f", {low}-{high} repeats per stimulus"
            if "median_reliability" in entry:
                source = {"split-half": "split-half reliability",
                          "file": "reliability (the manifest's reliability_file)"}[entry["reliability_source"]]
                line += f", median {source} {entry['median_reliability']:.3f}"
                if entry["n_neuroids"] != entry["n_recorded"]:
                    line += f" (before filtering {entry['median_reliability_recorded']:.3f})"
            else:
                line += ", no repeats published (no reliability)"
        print(line)
        for metric in ("rsa", "regression"):
            value = dataset.ceiling(region, metric)
            if value is not None:
                print(f"  noise ceiling ({metric}): {value:.3f}" + _bounds(dataset, region, metric))
    print(f"license: {manifest.license}")
    print(f"citation: {manifest.citation}")
    return 0


def _bounds(dataset, region: str, metric: str) -> str:
    subject_rdms = dataset.region_data(region).subject_rdms
    if metric != "rsa" or subject_rdms is None:
        return ""
    from workbench.metrics.ceiling import rsa_subject_ceiling

    lower, _ = rsa_subject_ceiling(subject_rdms)
    return (f" (leave-one-subject-out upper bound over {len(subject_rdms)} subjects; "
            f"lower bound {lower:.3f})")
