"""``saicm train`` and ``saicm export``: training on an image folder (the work lives in :mod:`saicm.train`)."""

from __future__ import annotations

import argparse
import os

from .argtypes import QUIET_HELP, ints, lambdas, learning_rate, nonneg, nonneg_float, positive


def cmd_train(a: argparse.Namespace) -> int:
    from ..device import launcher, resolve_device

    resolve_device(a.device, launcher()[2])  # (a GPU that is not there is said before the trainer's imports: 3–6 s)
    from ..train.config import TrainConfig
    from ..train.trainer import train

    cfg = TrainConfig(
        data=a.data, out=a.out, architecture=a.architecture, base=a.base, m=a.m, slice_channels=a.slice_channels,
        condition=a.condition, human_init=a.human_init, fusion_channels=a.fusion_channels,
        freeze=tuple(a.freeze) if a.freeze else None,
        context_hidden=a.context_hidden, context_kernel=a.context_kernel,
        context_groups=tuple(a.context_groups) if a.context_groups else None, context_checkerboard=a.context_checkerboard,
        N=a.N, M=a.M, lambdas=tuple(a.lambdas) if a.lambdas else None,
        loss=a.loss, masks=a.masks, off_mask_weight=a.off_mask_weight, init=a.init, steps=a.steps, batch=a.batch, patch=a.patch, lr=a.lr,
        seed=a.seed, log_every=a.log_every, ckpt_every=a.ckpt_every, resume=a.resume, progress=not a.quiet,
        device=a.device, amp=a.amp, quant=a.quant, compile=a.compile,
    )
    path = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 says it
        print(f"wrote {path}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from ..train.trainer import export_checkpoint

    export_checkpoint(a.checkpoint, a.output, meta={"description": a.description} if a.description else None)
    print(f"wrote {a.output}")
    return 0


def register(sub) -> None:
    from ..device import DEVICE_HELP
    from ..train.config import AMP_MODES, DEFAULT_LAMBDAS, QUANT_MODES

    t = sub.add_parser("train", help="rate-distortion training on an image folder",
                       description="Train a variable-rate codec on random crops of an image folder. "
                       "Multi-process: torchrun --nproc_per_node=K -m saicm train ... (gloo, CPU).")
    t.add_argument("--data", required=True, action="append",
                   help="folder of training images (searched recursively); repeat for several folders")
    # (-o too: every other command that writes takes it, import-checkpoint's --out included; torchrun passes it on)
    t.add_argument("--out", "-o", required=True, help="run folder: checkpoint.pt, log.jsonl, model.safetensors")
    t.add_argument("--architecture",
                   help="registered architecture name (default: --init's, else gained-mean-scale-hyperprior, or "
                   "scalable-fusion with --base; gained-context-hyperprior: channel-group and checkerboard contexts, "
                   "with --init HYPERPRIOR starting from its transforms and hyperprior)")
    t.add_argument("--base", help="scalable coding: train the human layer (additional-information codec + fusion "
                   "decoder) over this frozen machine-layer model (a name of `saicm models` or a .safetensors path)")
    t.add_argument("--m", "--slices", dest="m", type=positive,
                   help="scalable coding: the additional latent covers the first m slices of the base latent "
                   "(default 4; under torchrun write --slices, which torchrun's own parser does not take for "
                   "one of its options)")
    t.add_argument("--condition", choices=["none", "base"],
                   help="scalable coding: none = the paper's additional codec (sees only the image, own entropy "
                   "model); base = a variant that codes the residual to the base latent with entropy parameters "
                   "conditioned on it (default none)")
    t.add_argument("--human-init", help="scalable coding: start the additional analysis, its gains and the human "
                   "synthesis from this single-layer MSE model (e.g. mse-hyperprior-n64-v5) instead of the base")
    t.add_argument("--fusion-channels", choices=["first", "energy"],
                   help="scalable coding: which base channels the additional latent is added to: first = the first "
                   "s·m (the paper's, default); energy = the s·m of the largest variance on 32 centre crops of "
                   "--data (the first channels of saicm's bases carry little of their latent; recorded in the model)")
    t.add_argument("--slice-channels", type=positive,
                   help="scalable coding: channels per slice s (default 32: m = 1..4 for M = 128)")
    t.add_argument("--context-hidden", type=positive,
                   help="gained-context-hyperprior: hidden channels of the channel-context and aggregation "
                   "networks (default 96, or --init's; another size than --init's starts the contexts anew). "
                   "With --base, any --context-* option gives the additional codec these contexts")
    t.add_argument("--context-kernel", type=positive,
                   help="gained-context-hyperprior: kernel size of the channel-context convolutions (odd; "
                   "default 5, or --init's; 3 costs about 9/25 of their multiply-adds)")
    t.add_argument("--context-groups", type=ints, metavar="A,B,...",
                   help="gained-context-hyperprior: channels per group, coded in this order, summing to M "
                   "(default M/8,M/8,M/4,M/2, or --init's; fewer groups, fewer passes)")
    t.add_argument("--no-checkerboard", dest="context_checkerboard", action="store_const", const=False,
                   help="gained-context-hyperprior: one pass per group with the channel context only, instead "
                   "of two checkerboard passes (faster; no spatial context)")
    t.add_argument("--N", type=positive, help="hidden channels (default --init's, else the architecture's own: 64 "
                   "for the hyperprior and context models, 128 for tcm). Larger than --init's "
                   "widens it (hyperprior and context models): the new channels start where they change nothing")
    t.add_argument("--M", type=positive, help="latent channels (default --init's, which cannot change, else the "
                   "architecture's own: 128, 320 for tcm; "
                   "scalable: s·m)")
    t.add_argument("--lambdas", type=lambdas,
                   help="λ per quality, ascending (L = R + λ·255²·D); default those of --init, else "
                   + ",".join(map(str, DEFAULT_LAMBDAS)) + ". With --init: the same count starts "
                   "quality q from the init model's q; another count re-samples its gains in log λ")
    t.add_argument("--loss", choices=["mse", "saicm", "object"],
                   help="distortion: mse (all pixels), saicm (edge pixels of --masks, SA-ICM), "
                   "object (object pixels of --masks, Object-ICM); masked errors are averaged over all pixels, as in "
                   "the papers; default mse, or the run's with --resume")
    t.add_argument("--masks", action="append",
                   help="mask folder made by `saicm masks` for each --data folder, in the same order")
    t.add_argument("--off-mask-weight", type=nonneg_float,
                   help="weight of the pixels outside the mask in masked losses (default 0: free, the papers' loss; "
                   "or the run's with --resume)")
    t.add_argument("--init", help="start from this model (a name of `saicm models`: shipped or yours in "
                   "$SAICM_MODELS; or a .safetensors path)")
    t.add_argument("--steps", type=nonneg,
                   help="total optimiser steps; also sets the learning-rate decay (default 10000, or the run's "
                   "with --resume)")
    t.add_argument("--batch", type=positive, help="global batch size, split over processes (default 16, or the "
                   "run's with --resume)")
    t.add_argument("--patch", type=positive, help="random crop size in pixels (default 128, or the run's with "
                   "--resume)")
    t.add_argument("--lr", type=learning_rate, help="Adam learning rate (default 1e-4, or the run's with --resume): "
                   "reached after a linear warm-up of 100 steps, held, then a cosine decay to a tenth of it over the last "
                   "20 %% of --steps")
    t.add_argument("--seed", type=nonneg, help="random seed (default 0, or the run's with --resume)")
    t.add_argument("--log-every", type=positive, help="steps between log.jsonl lines (default 25, or the run's "
                   "with --resume)")
    t.add_argument("--ckpt-every", type=positive,
                   help="steps between atomic checkpoints (default 200, or the run's with --resume)")
    t.add_argument("--device", default="auto", help=DEVICE_HELP + "; under torchrun each process takes "
                   "its LOCAL_RANK GPU and DDP uses NCCL (gloo on CPU)")
    t.add_argument("--amp", choices=AMP_MODES,
                   help="mixed precision: bf16 runs the transforms in bfloat16 (entropy models stay fp32); "
                   "~1.7x faster on CPUs with AMX/AVX512-BF16 (measured, N=64) and on recent GPUs, but several times "
                   "slower on CPUs without them, which emulate bfloat16 (a warning says so) (default off, or the run's with "
                   "--resume)")
    t.add_argument("--quant", choices=QUANT_MODES,
                   help="what the synthesis transforms see while training: noise (uniform-noise proxy, "
                   "CompressAI's default) or ste (the latents rounded as the coder rounds them, straight-through "
                   "gradients; rates keep the noise proxy: 'mixed quantisation', closes the train/decode gap); "
                   "default noise, or the run's with --resume")
    t.add_argument("--compile", action="store_true",
                   help="run the training step through torch.compile: the first step compiles (up to ~1 min), "
                   "later ones run ~1.3-1.4x faster on CPU (measured, N=64, batch 8 of 256x256, bf16); the same "
                   "crops, qualities and noise as without it, the same checkpoints and --resume; needs a C++ "
                   "compiler (default off)")
    t.add_argument("--freeze", action="append", metavar="PREFIX",
                   help="keep the parameters whose names start with PREFIX fixed (repeatable; e.g. g_s, or "
                   "add.g_a for a scalable model's additional analysis)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present, exactly where it stopped (the "
                   "run keeps its model (rebuilt from the checkpoint), --init, --seed, --lambdas, --loss, "
                   "--off-mask-weight, --quant, --freeze and scalable options, other values refused; every option "
                   "not given is the run's: --resume --out RUN --data DIR is enough)")
    t.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="turn a training checkpoint into a shippable fp16 model file")
    e.add_argument("checkpoint", help="a run's checkpoint.pt (saicm train --out RUN writes RUN/checkpoint.pt)")
    e.add_argument("-o", "--output", required=True, help="destination .safetensors")
    e.add_argument("--description", help="one line shown by `saicm models` (default: derived from the "
                   "training settings stored in the checkpoint)")
    e.set_defaults(func=cmd_export)
