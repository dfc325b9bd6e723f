"""The ``saicm`` command. One thin function per subcommand; the work lives in the modules."""

from __future__ import annotations

import argparse
import sys


def _floats(s: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def cmd_train(a: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(
        data=a.data, out=a.out, architecture=a.architecture, N=a.N, M=a.M, lambdas=tuple(a.lambdas),
        loss=a.loss, masks=a.masks, init=a.init, steps=a.steps, batch=a.batch, patch=a.patch, lr=a.lr,
        seed=a.seed, log_every=a.log_every, ckpt_every=a.ckpt_every, resume=a.resume, progress=not a.quiet,
    )
    path = train(cfg)
    print(f"wrote {path}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .train import export_checkpoint

    export_checkpoint(a.checkpoint, a.output)
    print(f"wrote {a.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .train import DEFAULT_LAMBDAS

    p = argparse.ArgumentParser(prog="saicm", description="Learned image coding for machines and humans.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="rate-distortion training on an image folder",
                       description="Train a variable-rate codec on random crops of an image folder. "
                       "Multi-process: torchrun --nproc_per_node=K -m saicm train ... (gloo, CPU).")
    t.add_argument("--data", required=True, help="folder of training images (searched recursively)")
    t.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.jsonl, model.safetensors")
    t.add_argument("--architecture", default="gained-mean-scale-hyperprior")
    t.add_argument("--N", type=int, default=64, help="hidden channels (default 64)")
    t.add_argument("--M", type=int, default=128, help="latent channels (default 128)")
    t.add_argument("--lambdas", type=_floats, default=list(DEFAULT_LAMBDAS),
                   help="λ per quality, ascending (L = R + λ·255²·D); default " + ",".join(map(str, DEFAULT_LAMBDAS)))
    t.add_argument("--loss", default="mse", help="distortion term (default mse)")
    t.add_argument("--masks", help="mask folder for masked losses")
    t.add_argument("--init", help="start from this model (shipped name or .safetensors)")
    t.add_argument("--steps", type=int, default=10000)
    t.add_argument("--batch", type=int, default=16, help="global batch size (split over processes)")
    t.add_argument("--patch", type=int, default=128, help="crop size in pixels")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=25)
    t.add_argument("--ckpt-every", type=int, default=200)
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="turn a training checkpoint into a shippable fp16 model file")
    e.add_argument("checkpoint")
    e.add_argument("-o", "--output", required=True, help="destination .safetensors")
    e.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    from .errors import SaicmError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SaicmError as e:
        print(f"saicm: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("saicm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
