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

    compare = subparsers.add_parser(
        "compare-models",
        help="layer x layer CKA/RSA between two networks on one stimulus set (heatmaps, .nc, .csv)")
    compare.add_argument("model_a", metavar="A", help="a model name, or package.module:factory")
    compare.add_argument("model_b", metavar="B", help="a model name, or package.module:factory (may equal A)")
    compare.add_argument("--dataset", required=True, metavar="DATASET",
                         help="dataset name or manifest path whose stimuli both models see")
    compare.add_argument("--out", required=True, metavar="DIR", help="where to write the results")
    compare.add_argument("--metrics", nargs="+", default=["cka", "rsa"], choices=("cka", "rsa"), metavar="METRIC",
                         help="cka and/or rsa (default: both)")
    compare.add_argument("--weights", nargs="+", default=["random"], metavar="WEIGHTS",
                         help='"random" (default), "imagenet" or a checkpoint path for both; MODEL=WEIGHTS per model')
    compare.add_argument("--layers-a", nargs="+", default=None, metavar="LAYER", help="layers of A (default: all)")
    compare.add_argument("--layers-b", nargs="+", default=None, metavar="LAYER", help="layers of B (default: all)")
    compare.add_argument("--protocol", action="append", default=[], metavar="FIELD=VALUE",
                         help="override a Protocol field (z-scoring, time_steps, batch_size, seed)")
    compare.add_argument("--device", default="cpu", metavar="DEVICE", help='"cpu" (default), "cuda" or "cuda:N"')
    compare.set_defaults(func=_compare)


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


def _compare(args: argparse.Namespace) -> int:
    from workbench.analysis import Protocol
    from workbench.analysis.checks import check_device, check_out_dir, weights_by_model
    from workbench.analysis.model_comparison import compare_models
    from workbench.data import read_manifest
    from workbench.models import check_model_names, model_info
    from workbench.reports.model_comparison import save_model_similarity

    check_out_dir(args.out)
    models = list(dict.fromkeys([args.model_a, args.model_b]))
    check_model_names(models)
    read_manifest(args.dataset)
    protocol = Protocol().replace(**Protocol.parse_overrides(args.protocol))
    weights = weights_by_model(args.weights, models)
    from workbench.analysis.checks import check_weights

    check_weights(weights)
    device = check_device(args.device)
    for model, layers in ((args.model_a, args.layers_a), (args.model_b, args.layers_b)):
        declared = model_info(model).layers
        bad = [layer for layer in layers or () if layer not in declared]
        if bad:
            from workbench.errors import ValidationError

            raise ValidationError(f"layers {bad} are not analysis layers of {model}; expected some of {list(declared)}")
    similarity = compare_models(args.model_a, args.model_b, args.dataset, metrics=args.metrics, protocol=protocol,
                                weights_a=weights[args.model_a], weights_b=weights[args.model_b],
                                layers_a=args.layers_a, layers_b=args.layers_b, device=device)
    written = save_model_similarity(similarity, args.out)
    print(f"wrote {len(written)} files to {args.out} ({similarity.sizes['layer_a']} x "
          f"{similarity.sizes['layer_b']} layers, {', '.join(args.metrics)})")
    return 0
