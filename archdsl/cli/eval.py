"""``archdsl eval``: accuracy of a checkpoint on a dataset's validation split."""

from __future__ import annotations

from ._shared import add_spec_arguments, parse_overrides, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint: top-1, top-5 and per-class accuracy",
        description="Evaluate CKPT (an archdsl checkpoint, a run directory, or a state dict file) "
                    "with SPEC on the validation split of DATA ('fashion-mnist' uses its test set). "
                    "An archdsl checkpoint restores the variant and parameters it was trained with.")
    add_spec_arguments(p)
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="a .safetensors checkpoint, a run directory (its best), or a .pth state dict")
    p.add_argument("--data", required=True, help="a class-per-subfolder folder, 'fashion-mnist' or 'digits'")
    p.add_argument("--val-split", type=float, metavar="F",
                   help="held-out fraction (default: the one the checkpoint was trained with)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", help="cpu, cuda, cuda:1… (default: cuda when available)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], help="default: bf16 on CUDA, none on CPU")
    p.add_argument("--workers", type=int, help="DataLoader workers for folders")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(args.spec, args.checkpoint, args.data, variant=args.variant,
                                 overrides=parse_overrides(args.overrides), batch_size=args.batch_size,
                                 device=args.device, amp=args.amp, workers=args.workers,
                                 val_split=args.val_split)
    if args.json:
        print_json(report)
        return 0
    epoch = f", epoch {report['epoch']}" if report["epoch"] else ""
    print(f"{report['name']}  {report['checkpoint']}{epoch}")
    print(f"  data    {report['data']} ({report['split']}, {report['images']:,} images)")
    print(f"  top-1   {report['top1']:.2%}")
    print(f"  top-5   {report['top5']:.2%}")
    print(f"  loss    {report['loss']:.4f}")
    width = max([len("class")] + [len(row["class"]) for row in report["per_class"]])
    print(f"\n  {'class':<{width}}  accuracy   correct / total")
    for row in report["per_class"]:
        acc = f"{row['accuracy']:.2%}" if row["accuracy"] is not None else "-"
        print(f"  {row['class']:<{width}}  {acc:>8}   {row['correct']:>7} / {row['total']}")
    return 0
