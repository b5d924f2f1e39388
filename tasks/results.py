"""The command lines that read results: ``lenet-pipeline runs`` and ``lenet-pipeline predict``.

    lenet-pipeline runs list [--sort test_error] [--filter epochs=10] [--all-params] [--paths-outputs DIR]
    lenet-pipeline runs diff <evaluate id or dir> <evaluate id or dir> [--paths-outputs DIR]
    lenet-pipeline predict [--model latest | TRAIN_DIR] [--paths-outputs DIR] IMAGE ...

``runs list`` prints one row per evaluated run with the parameters that differ between runs
(``--all-params`` for all) and the test error, like ``dvc exp show``; ``runs diff`` the
parameters and metrics that differ between two runs. ``predict`` prints the class and its
probability for each image (PNG/JPEG of any size, or .npy batches of 28x28 pixels), after the
training preprocessing (grayscale, 28x28, inverted when the background is light), with the model
of a Train artifact directory or, for ``latest``, the most recently finished training.
"""

import argparse
import json

import numpy as np

from pipeline.errors import ConfigError
from tasks.options import outputs_option, store_of


def runs_command(argv: list[str], prog: str) -> int:
    """``lenet-pipeline runs {list,diff}``: print the runs table or a diff; returns the exit code."""
    from pipeline.results import runs

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], parents=[outputs_option()])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="one row per evaluated run", parents=[outputs_option(nested=True)])
    listing.add_argument("--sort", default="test_error", help="a metric, a parameter, 'ended' or 'run'")
    listing.add_argument("--filter", action="append", default=[], help="parameter=value (repeatable)")
    listing.add_argument("--all-params", action="store_true", help="show every parameter, not only varying ones")
    listing.add_argument("--json", action="store_true")
    difference = commands.add_parser("diff", help="parameter and metric differences of two runs",
                                     parents=[outputs_option(nested=True)])
    difference.add_argument("first")
    difference.add_argument("second")
    difference.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "list":
        try:
            filters = runs.parse_filters(args.filter)
        except ConfigError as error:
            parser.error(str(error))
    store = store_of(args)
    found = runs.load_runs(store)
    if args.command == "list":
        chosen = runs.select_runs(found, filters, args.sort)
        if not chosen and not args.json:
            print(f"no evaluated runs under {store.describe()}" + (" match the filters" if args.filter else ""))
            return 0
        print(json.dumps(chosen, indent=2) if args.json else runs.format_table(chosen, args.all_params))
    else:
        first, second = runs.find_run(found, args.first), runs.find_run(found, args.second)
        result = runs.diff_runs(first, second)
        print(json.dumps(result, indent=2) if args.json else runs.format_diff(first, second, result))
    return 0


def predict_command(argv: list[str], prog: str) -> int:
    """``lenet-pipeline predict``: print each image's class and probability; returns the exit code."""
    from pathlib import Path

    from pipeline.results.predict import class_names_for, find_model, predict
    from pipeline.results.preprocess import load_inputs

    parser = argparse.ArgumentParser(prog=prog, description="classes of images, with a trained model",
                                     parents=[outputs_option()])
    parser.add_argument("images", nargs="+", type=Path, help="PNG/JPEG files or .npy batches")
    parser.add_argument("--model", default="latest", help="'latest' or a Train artifact directory")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    args = parser.parse_args(argv)
    images, names = load_inputs(args.images)
    model_path = find_model(args.model, store_of(args) if args.model == "latest" else None)
    probabilities = predict(model_path, images)
    class_names = class_names_for(model_path)
    for name, row in zip(names, probabilities):
        best = int(np.argmax(row))
        if args.json:
            print(json.dumps({"input": name, "class": best, "label": class_names[best],
                              "probability": round(float(row[best]), 6)}))
        else:
            print(f"{name}: {class_names[best]} ({best}) with probability {row[best]:.3f}")
    return 0
