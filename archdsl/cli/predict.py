"""``archdsl predict``: top-k classes of image files with a spec and its weights."""

from __future__ import annotations

import sys

from ._shared import parse_overrides, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="classify image files: top-k labels and probabilities",
        description="Run SPEC with weights W on IMAGE files and print each one's top-k classes. "
                    "W is a published tag of a bundled name (DEFAULT, IMAGENET1K_V2: loaded from "
                    "$TORCH_HOME/hub/checkpoints, hash checked, nothing downloads; torchvision's "
                    "preprocessing and ImageNet categories), an archdsl checkpoint or run directory "
                    "(the input size, normalisation and class names recorded at training), or a "
                    "state dict file (.pth/.safetensors: the preprocessing is guessed and the labels "
                    "are class indices, both said on stderr). Needs Pillow (the vision extra).",
        epilog="examples:  archdsl predict resnet50 --weights IMAGENET1K_V2 cat.jpg  |  "
               "archdsl predict examples/small_resnet.arch --weights runs/fmnist shoe.png --topk 3")
    p.add_argument("spec", metavar="SPEC", help="a .arch file or a bundled model name")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, …)")
    p.add_argument("--weights", required=True, metavar="W",
                   help="a published tag (DEFAULT, IMAGENET1K_V1…), a checkpoint, a run directory, "
                        "or a .pth/.safetensors state dict")
    p.add_argument("--topk", type=int, default=5, metavar="K", help="classes shown per image (default 5)")
    p.add_argument("--variant", help="one of the spec's variants (default: the trained one)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec parameter (a spec expression); repeatable")
    p.add_argument("--device", help="cpu, cuda, cuda:1… (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.predict import predict

    report = predict(args.spec, args.weights, args.images, topk=args.topk, variant=args.variant,
                     overrides=parse_overrides(args.overrides), device=args.device)
    for note in report["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print_json(report)
        return 0
    width = max(len(row["label"]) for image in report["images"] for row in image["top"])
    for n, image in enumerate(report["images"]):
        print(("\n" if n else "") + image["file"])
        for row in image["top"]:
            print(f"  {row['rank']:>2}  {row['label']:<{width}}  {row['probability']:7.2%}")
    return 0
