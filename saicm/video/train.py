"""Fitting a NeRV or HNeRV network to one clip: the NeRV / SA-NeRV loss, stages, checkpoints, a divergence guard.

**Loss.** ``L = β·|x − x̂|₁ + (1 − β)·(1 − SSIM(x, x̂))`` per frame, β = 0.7
(NeRV's reference implementation); SSIM is pytorch-msssim's (11×11 Gaussian
window, σ = 1.5; a dependency of the ``train`` extra, with no fallback here).
**SA-NeRV** adds the same term on edge-masked frames, ``L(x⊙e, x̂⊙e)`` (``e``
the frame's binary edge mask), times ``edge_weight`` (1).

**Stages** (one optimiser and schedule each: Adam with β₁ = 0.5, β₂ = 0.999,
linear warm-up over the first ``warmup`` share of the stage, then cosine to 0;
batches of ``batch`` frames in a seeded random order):

1. ``fit``: ``epochs`` epochs at ``lr`` (HNeRV: encoder and decoder end to
   end; at the end of the stage the encoder's embeddings of every frame are
   stored in the network and the encoder is dropped, so the later stages tune
   the decoder and the embeddings);
2. ``prune``: the fraction ``prune`` of the weights (not biases) with the
   smallest magnitude over the whole network (HNeRV: not the embeddings) is
   set to zero and held there,
   and the rest is fine-tuned (``prune_epochs`` at ``lr·0.3``; 0: no fine-tuning);
3. ``qat``: quantisation-aware fine-tuning (``qat_epochs`` at ``lr·0.1``): the
   forward pass uses the weights quantised exactly as the file will hold them
   (:func:`saicm.video.compress.fake_quantise`), the gradient updates the float
   weights (straight-through).

**Divergence guard.** After every epoch the epoch's training PSNR is compared
with the best of the stage; a non-finite loss or a PSNR more than ``guard_db``
(3 dB) below the best is a collapse: the weights, optimiser and data order go
back to the last good checkpoint and the stage's learning rate is multiplied
by ``lr_drop`` (0.5). After ``max_rollbacks`` (5) rollbacks in a stage the
stage stops at its last good checkpoint (said in the history, and on the bar).

**Several processes** (``torchrun``; the caller initialises torch.distributed:
:func:`saicm.video.api.encode` does): every process starts from rank 0's
weights and takes its share of every batch (``batch`` must be a multiple of
the processes), gradients are summed, the epoch's loss and PSNR are summed
over processes so that every process takes the same rollback decisions, and
only rank 0 writes checkpoints.

**Checkpoints** (``checkpoint=`` path; the CLI puts it beside the output) are
written atomically every ``ckpt_every`` epochs, after a rollback and at the
end of each stage; they hold the weights, optimiser, data-order generator,
stage, epoch, learning-rate scale, rollbacks and pruning masks, plus a
fingerprint of the clip, masks, configuration and settings: ``resume=True``
continues from one only when the fingerprint matches. A resumed run takes the
same steps as an uninterrupted one (same seed, same thread count: same result).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import signal
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._progress import StatusLines, progress_bar, time_left
from .._signals import StopRequest
from ..device import peer_gone
from ..errors import ArgumentError, SaicmError, first_line
from ..train.compiling import CompiledStep, compiler_errors, import_dynamo
from ..train.config import learning_rate_ok

CKPT_FORMAT = "saicm-video-checkpoint/1"
LOSSES = ("nerv", "sa-nerv")


@dataclass
class FitSettings:
    """How a clip is fitted (every field goes into the checkpoint fingerprint except the bookkeeping ones)."""

    epochs: int = 300
    lr: float = 1e-3
    batch: int = 1
    warmup: float = 0.2
    beta: float = 0.7
    loss: str = "nerv"
    edge_weight: float = 1.0
    prune: float = 0.4
    prune_epochs: int | None = None  # default: epochs // 6
    qat_epochs: int | None = None  # default: epochs // 10
    bits: int = 8
    seed: int = 0
    guard_db: float = 3.0
    lr_drop: float = 0.5
    max_rollbacks: int = 5
    # bookkeeping, not part of the fingerprint
    ckpt_every: int = 10
    compile: bool = False  # the loss through torch.compile (saicm.train.compiling): faster, the same fit

    def stages(self) -> list[tuple[str, int, float]]:
        """(name, epochs, learning rate) of each stage that runs."""
        pe = max(self.epochs // 6, 1) if self.prune_epochs is None else self.prune_epochs
        qe = self.epochs // 10 if self.qat_epochs is None else self.qat_epochs
        out = [("fit", self.epochs, self.lr)]
        if self.prune > 0:
            out.append(("prune", pe, self.lr * 0.3))  # 0 epochs: prune without fine-tuning
        if qe > 0:
            out.append(("qat", qe, self.lr * 0.1))
        return out

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise ArgumentError(f"unknown loss {self.loss!r} (losses: {', '.join(LOSSES)})")
        if self.epochs < 1 or self.batch < 1 or not learning_rate_ok(self.lr):
            raise ArgumentError(f"epochs and batch must be at least 1 and the learning rate > 0 and at most 1; got "
                                f"{self.epochs}, {self.batch}, {self.lr:g}")
        if not 0 <= self.prune < 1:
            raise ArgumentError(f"prune is the share of weights set to zero, 0 <= p < 1; got {self.prune}")
        if not 0 <= self.beta <= 1 or not self.edge_weight >= 0:
            raise ArgumentError(f"beta must be in [0, 1] and the edge weight >= 0; got {self.beta}, "
                                f"{self.edge_weight}")
        if not 2 <= self.bits <= 8:
            raise ArgumentError(f"bits must be 2..8, got {self.bits}")
        if (self.prune_epochs or 0) < 0 or (self.qat_epochs or 0) < 0:
            raise ArgumentError("prune/qat epochs must be >= 0")
        if self.ckpt_every < 1:
            raise ArgumentError("checkpoints every N >= 1 epochs")

    def fingerprint_dict(self) -> dict:
        d = asdict(self)
        d.pop("ckpt_every")
        d.pop("compile")
        return d


@dataclass
class FitReport:
    """What happened: per-stage final PSNR, rollbacks, the epoch log, seconds."""

    history: list = field(default_factory=list)
    events: list = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: str | None = None


# --- the loss ----------------------------------------------------------------------------------

def _ssim_fn():
    try:  # (pytorch-msssim's own helpers, not its public API: a release without them gets its ssim, slower)
        from pytorch_msssim.ssim import _fspecial_gauss_1d, gaussian_filter  # noqa: F401

        impl = ssim
    except ImportError:
        from pytorch_msssim import ssim as public

        def impl(x, y):
            return public(x, y, data_range=1.0, size_average=True)

    def fn(x, y):
        if min(x.shape[-2:]) < 11:  # the Gaussian window's size: a side under it is not smoothed (docs/video.md),
            _quiet_small_ssim()     # which pytorch-msssim said on every training step
        return impl(x, y)

    return fn


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """pytorch-msssim's ``ssim(x, y, data_range=1.0, size_average=True)`` (the SSIM of the NeRV loss; pytorch-msssim is
    a dependency of CompressAI, declared in ``[train]``), to the bit, forward and backward, in about half its CPU time:
    its Gaussian window (depthwise convolutions: about 40 % of a training step's CPU time at 352x288 in pytorch-msssim's
    NCHW layout) runs on channels-last copies of the frames; the SSIM map goes back to the usual layout before its
    mean, which sums it in pytorch-msssim's order, as the gradient of the frames does before the network's backward
    (left channels-last, that changed the last layer's bias gradient, a sum over the pixels, hence the file)."""
    from pytorch_msssim.ssim import _fspecial_gauss_1d, gaussian_filter

    cl, usual = torch.channels_last, torch.contiguous_format
    win = _fspecial_gauss_1d(11, 1.5).repeat([x.shape[1], 1, 1, 1]).to(x.device, dtype=x.dtype)
    c1, c2 = 0.01 ** 2, 0.03 ** 2  # (K1·data_range)², (K2·data_range)²
    x, y = _Layout.apply(x, cl, usual), _Layout.apply(y, cl, usual)
    mu1, mu2 = gaussian_filter(x, win), gaussian_filter(y, win)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    sigma1_sq = gaussian_filter(x * x, win) - mu1_sq
    sigma2_sq = gaussian_filter(y * y, win) - mu2_sq
    sigma12 = gaussian_filter(x * y, win) - mu1_mu2
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    ssim_map = _Layout.apply(((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map, usual, cl)
    return torch.flatten(ssim_map, 2).mean(-1).mean()


class _Layout(torch.autograd.Function):
    """``x`` in the memory layout ``to``, its gradient in ``back``."""

    @staticmethod
    def forward(ctx, x: Tensor, to: torch.memory_format, back: torch.memory_format) -> Tensor:
        ctx.back = back
        return x.contiguous(memory_format=to)

    @staticmethod
    def backward(ctx, g: Tensor):
        return g.contiguous(memory_format=ctx.back), None, None


def _quiet_small_ssim() -> None:
    """One filter for pytorch-msssim's warning of frames under its window, added once: not a ``catch_warnings`` per
    step, which is not thread-safe and resets the warning registries each time."""
    global _ssim_filtered
    if not _ssim_filtered:
        warnings.filterwarnings("ignore", message="Skipping Gaussian Smoothing", module="pytorch_msssim")
        _ssim_filtered = True


_ssim_filtered = False


def nerv_loss(x_hat: Tensor, x: Tensor, beta: float, ssim_fn) -> Tensor:
    return beta * (x_hat - x).abs().mean() + (1 - beta) * (1 - ssim_fn(x_hat, x))


# --- quantisation-aware forward passes and pruning ----------------------------------------------

def _weight_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.dim() >= 2]


def magnitude_masks(model: nn.Module, ratio: float) -> dict[str, Tensor]:
    """Global magnitude pruning: masks keeping the weights (dim ≥ 2) above the ``ratio`` quantile of |w|."""
    params = dict(model.named_parameters())
    names = model.prunable() if hasattr(model, "prunable") else _weight_names(model)
    flat = torch.cat([params[n].detach().abs().flatten() for n in names])
    k = int(ratio * flat.numel())
    if k < 1:
        return {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
    thr = torch.kthvalue(flat.cpu(), k).values.item()
    return {n: params[n].detach().abs() > thr for n in names}


def apply_masks(model: nn.Module, masks: dict[str, Tensor] | None) -> None:
    if not masks:
        return
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in masks:
                p.mul_(masks[n].to(p.device, p.dtype))


# --- the fitting loop ------------------------------------------------------------------------------

def fingerprint(frames: np.ndarray, masks: np.ndarray | None, config: dict, settings: FitSettings) -> str:
    h = hashlib.sha256()
    h.update(str(frames.shape).encode())
    h.update(memoryview(np.ascontiguousarray(frames)).cast("B"))  # (tobytes() copied the clip: 6.4 GB at the limit)
    if masks is not None:
        h.update(np.packbits(np.ascontiguousarray(masks)).tobytes())
    h.update(json.dumps({"config": config, "settings": settings.fingerprint_dict()}, sort_keys=True).encode())
    return h.hexdigest()


class _Snapshot:
    """The last good state: what a rollback returns to (and what checkpoints hold)."""

    def __init__(self, model, opt, gen, epoch, best):
        self.model = copy.deepcopy(model.state_dict())
        self.opt = copy.deepcopy(opt.state_dict())
        self.gen = gen.get_state().clone()
        self.epoch = epoch
        self.best = best


def _lr_at(it: int, total: int, base: float, warmup: float) -> float:
    w = max(1, int(round(warmup * total)))
    if it < w:
        return base * (it + 1) / w
    return base * 0.5 * (1 + math.cos(math.pi * (it - w) / max(1, total - w)))


def _save_checkpoint(path: Path | None, state: dict) -> None:
    if path is None:
        return
    from .._torchfile import save_atomic

    save_atomic(state, path)


def load_checkpoint(path: Path) -> dict:
    from .._torchfile import load_data_only

    ck = load_data_only(path, "checkpoint", hint="; delete it to start again")
    if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
        raise SaicmError("not a saicm video checkpoint", str(path))
    return ck


def _stops_after_an_epoch(fit_fn: Callable) -> Callable:
    """The fit under a :class:`StopRequest`: Ctrl-C, SIGTERM (a scheduler's time limit or preemption) or SIGUSR1/2
    (its warning ahead of the limit) stop it after the epoch in progress, its checkpoint written, where SIGTERM
    and SIGUSR1 ended it where it stood, the epochs since its last checkpoint (up to ``ckpt_every``) lost."""
    @functools.wraps(fit_fn)
    def run(*args, **kwargs):
        world, rank = _world()
        with StopRequest("stopping after this epoch" if rank == 0 else None) as stop:
            try:
                return fit_fn(*args, stop=stop, **kwargs)
            except (RuntimeError, ConnectionError) as e:
                if world == 1 or not peer_gone(e):
                    raise
                # another process was killed (the OOM killer): one line, not gloo's 40-line traceback; torchrun's
                # SIGTERM follows at once and must not end this process before it says so
                stop.ignore_from_now(signal.SIGTERM)
                what = f"another process of the encode stopped ({first_line(e)})"
                ckpt = kwargs.get("checkpoint")
                raise SaicmError(f"{what}: the last checkpoint is {ckpt}; go on with the same command and --resume"
                                 if ckpt and Path(ckpt).is_file() else
                                 f"{what} before the first checkpoint: run the same command again") from None
    return run


@_stops_after_an_epoch
def fit(model: nn.Module, frames: np.ndarray, settings: FitSettings, masks: np.ndarray | None = None,
        checkpoint: str | Path | None = None, resume: bool = False, device: torch.device | str = "cpu",
        progress: bool = True, fault: Callable[[str, int, nn.Module], None] | None = None,
        stop: StopRequest | None = None) -> FitReport:
    """Fit ``model`` to ``frames`` ((N, H, W, 3) uint8) in place, through every stage; returns the report.

    ``masks``: (N, H, W) bool edge masks (SA-NeRV). ``fault(stage, epoch, model)`` is called before every
    epoch (tests use it to make a run collapse).
    """
    from .compress import fake_quantise

    settings.check()
    if settings.loss == "sa-nerv" and masks is None:
        raise SaicmError("the sa-nerv loss needs edge masks (--masks DIR)")
    import_dynamo()  # (the first optimiser imports it; a kernel cache folder it cannot make is one line)
    device = torch.device(device)
    world, rank = _world()
    if world > 1 and settings.batch % world:
        raise SaicmError(f"--batch {settings.batch} must be a multiple of the {world} processes (each takes "
                         f"batch/{world} frames of every step)")
    if rank:
        progress = False
        checkpoint_writer = False
    else:
        checkpoint_writer = True
    n, h, w = frames.shape[:3]
    if min(h, w) < 2:  # (pytorch-msssim squeezes a side of 1 away: a ValueError traceback after the clip was read)
        raise SaicmError(f"frames of {w}x{h}: the NeRV loss (its SSIM) needs at least 2 pixels a side")
    report = FitReport()
    ckpt_path = Path(checkpoint) if checkpoint else None
    if ckpt_path is not None and checkpoint_writer:  # (a checkpoint being written when the fit was killed)
        from .._fs import remove_stale_parts

        remove_stale_parts(ckpt_path)
    fp = fingerprint(frames, masks if settings.loss == "sa-nerv" else None, model.config, settings)
    stages = settings.stages()

    state = {"stage_index": 0, "epoch": 0, "lr_scale": 1.0, "rollbacks": 0, "masks": None, "best": -math.inf,
             "gen": None, "optim": None}
    if resume and ckpt_path is not None and ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path)
        if ck.get("fingerprint") != fp:
            raise SaicmError("the checkpoint was written for another clip, frame range, size, preset or settings: "
                             "delete it to start again, or keep it and name another with --checkpoint",
                             str(ckpt_path))
        if ck["stage_index"] > 0 and hasattr(model, "drop_encoder"):
            model.drop_encoder()  # HNeRV after its fit stage: the embeddings are in the weights
        model.load_state_dict(ck["model"])
        state.update({k: ck[k] for k in ("stage_index", "epoch", "lr_scale", "rollbacks", "best", "gen", "optim")})
        state["masks"] = ck.get("masks")
        report.history = list(ck.get("history", []))
        report.events = list(ck.get("events", []))
        if state["stage_index"] < len(stages):
            report.resumed_from = f"{stages[state['stage_index']][0]} epoch {state['epoch']}"
        else:  # (every stage done: the last one's last epoch, where it said that stage's epoch 0)
            report.resumed_from = f"{stages[-1][0]} epoch {stages[-1][1]}"
        report.events.append(f"resumed from {ckpt_path.name}: {report.resumed_from}")

    model.to(device)
    if world > 1:  # every process starts from rank 0's weights
        import torch.distributed as dist

        for p in model.parameters():
            dist.broadcast(p.data, 0)
    frames_t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # uint8 (N, 3, H, W), a view
    masks_t = torch.from_numpy(np.ascontiguousarray(masks)).unsqueeze(1) if masks is not None else None
    inputs = model.frame_inputs(n)
    if inputs is not None:
        inputs = inputs.to(device)
    ssim_fn = _ssim_fn()
    bits = settings.bits
    total_epochs = sum(e for _, e, _ in stages)
    done_before = sum(e for _, e, _ in stages[: state["stage_index"]]) + state["epoch"]
    steps_per_epoch = math.ceil(n / settings.batch)  # (every stage: the same frames and batch)
    # the bar counts steps, so that its rate and time left show within the first epoch (of a long clip, minutes)
    bar = progress_bar(total=total_epochs * steps_per_epoch,
                       initial=min(done_before, total_epochs) * steps_per_epoch, unit="step", progress=progress,
                       dynamic_ncols=True)
    # (None: a bar on a terminal; elsewhere, nohup or a log file, a line per epoch, at most every LINE_SECONDS)
    lines = StatusLines("video", bool(progress) and bar.disable)

    def steps_done(epoch: int, step: int = 0) -> int:
        """The fit's steps done at ``step`` of ``epoch`` of the current stage."""
        return min(sum(e for _, e, _ in stages[: state["stage_index"]]) + epoch, total_epochs) * steps_per_epoch + step

    def bar_at(epoch: int) -> None:
        """The bar at the start of ``epoch`` of the current stage (after a rollback, an epoch's end, a stage's)."""
        bar.n = steps_done(epoch)
        bar.refresh()
    t0 = time.perf_counter()
    first_step = steps_done(state["epoch"])

    def left(done: int) -> str:
        """The time left of the whole fit at this run's mean rate (a resumed run's earlier steps are not timed)."""
        return time_left(done - first_step, total_epochs * steps_per_epoch - first_step, time.perf_counter() - t0)

    def loss_and_mse(x: Tensor, idx: Tensor, e: Tensor | None) -> tuple[Tensor, Tensor]:
        y = model.decode_frames(inputs, idx, x)[:, :, :h, :w]
        loss = nerv_loss(y, x, settings.beta, ssim_fn)
        if e is not None:
            loss = loss + settings.edge_weight * nerv_loss(y * e, x * e, settings.beta, ssim_fn)
        return loss, F.mse_loss(y.detach(), x)

    step = CompiledStep(loss_and_mse) if settings.compile else loss_and_mse

    def batch_loss(idx: Tensor) -> tuple[Tensor, float]:
        """The loss (mean over the frames ``idx``) and their mean squared error."""
        x = frames_t[idx].to(device, torch.float32).div_(255)
        e = masks_t[idx].to(device, torch.float32) if settings.loss == "sa-nerv" else None
        loss, mse = step(x, idx.to(device), e)
        return loss, float(mse)

    while state["stage_index"] < len(stages):
        name, epochs, lr = stages[state["stage_index"]]
        masks_p = state["masks"] if name in ("prune", "qat") else None
        if name == "prune" and masks_p is None:
            masks_p = magnitude_masks(model, settings.prune)
            state["masks"] = masks_p
        if masks_p is not None:
            masks_p = {k: v.to(device) for k, v in masks_p.items()}
            apply_masks(model, masks_p)
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
        gen = torch.Generator().manual_seed(settings.seed * 1000 + state["stage_index"])
        if state["optim"] is not None:
            opt.load_state_dict(state["optim"])
            gen.set_state(state["gen"])
        qat = name == "qat"
        iters = steps_per_epoch
        snap = _Snapshot(model, opt, gen, state["epoch"], state["best"])

        def write_ckpt(epoch: int, best: float, stage_index: int, model_state, opt_state, gen_state):
            if not checkpoint_writer:
                return
            _save_checkpoint(ckpt_path, {
                "format": CKPT_FORMAT, "fingerprint": fp, "stage_index": stage_index, "epoch": epoch,
                "model": model_state, "optim": opt_state, "gen": gen_state,
                "lr_scale": state["lr_scale"], "rollbacks": state["rollbacks"], "best": best,
                "masks": {k: v.cpu() for k, v in state["masks"].items()} if state["masks"] else None,
                "history": report.history, "events": report.events})

        epoch = state["epoch"]
        best = state["best"]
        stopped = halt = False
        while epoch < epochs:
            if fault is not None:
                fault(name, epoch, model)
            model.train()
            perm = torch.randperm(n, generator=gen)
            tot_loss = tot_mse = 0.0
            bad = False
            for k in range(iters):
                idx = perm[k * settings.batch: (k + 1) * settings.batch]
                share = idx[rank::world] if world > 1 else idx
                for g in opt.param_groups:
                    g["lr"] = _lr_at(epoch * iters + k, epochs * iters, lr, settings.warmup) * state["lr_scale"]
                if qat:
                    saved = [p.detach().clone() for p in model.parameters()]
                    fake_quantise(model, bits)
                if len(share):
                    loss, mse = batch_loss(share)
                else:  # a short last batch leaves this process nothing: it adds zero gradients
                    loss, mse = torch.zeros((), device=device, requires_grad=True), 0.0
                opt.zero_grad(set_to_none=True)
                if not _all_finite(loss.item(), world, device):
                    bad = True
                    if qat:
                        _restore(model, saved)
                    break
                with compiler_errors():  # --compile compiles the backward pass at its first use
                    (loss * (len(share) / len(idx)) if world > 1 else loss).backward()
                if world > 1:
                    _sum_gradients(model)
                if qat:
                    _restore(model, saved)
                if masks_p is not None:
                    for pn, p in model.named_parameters():
                        if pn in masks_p and p.grad is not None:
                            p.grad.mul_(masks_p[pn])
                opt.step()
                if masks_p is not None:
                    apply_masks(model, masks_p)
                bar.update(1)
                if k + 1 < iters:  # (an epoch of a long clip takes minutes to hours: off a terminal, said within it)
                    lines.say(f"{name} step {k + 1}/{iters} of epoch {epoch + 1}/{epochs}"
                              f"{left(steps_done(epoch, k + 1))}")
                tot_loss += loss.item() * len(share)
                tot_mse += mse * len(share)
            if world > 1:  # (with the processes' stop requests: they stop after the same epoch)
                tot_loss, tot_mse, asked = _sum_over_processes(tot_loss, tot_mse, float(bool(stop and stop.requested)),
                                                               device=device)
                halt = asked > 0
            else:
                halt = bool(stop and stop.requested)
            psnr = -10 * math.log10(max(tot_mse / n, 1e-12)) if not bad else float("nan")
            collapse = bad or not math.isfinite(psnr) or (math.isfinite(best) and psnr < best - settings.guard_db)
            if collapse:
                state["rollbacks"] += 1
                what = "non-finite loss" if bad or not math.isfinite(psnr) else \
                    f"PSNR {psnr:.2f} dB, {best - psnr:.1f} dB below the best {best:.2f}"
                failed = epoch + 1
                model.load_state_dict(snap.model)
                opt.load_state_dict(snap.opt)
                gen.set_state(snap.gen)
                epoch, best = snap.epoch, snap.best
                bar_at(epoch)
                if state["rollbacks"] > settings.max_rollbacks:
                    report.events.append(f"{name} epoch {failed}: {what}; {settings.max_rollbacks} rollbacks "
                                         f"already: the stage stops at its last good checkpoint (epoch {epoch})")
                    bar.write(f"saicm video: {report.events[-1]}")
                    stopped = True
                    break
                state["lr_scale"] *= settings.lr_drop
                report.events.append(f"{name} epoch {failed}: {what}; rolled back to epoch {snap.epoch}, "
                                     f"learning rate x{state['lr_scale']:g}")
                bar.write(f"saicm video: {report.events[-1]}")
                write_ckpt(snap.epoch, snap.best, state["stage_index"], snap.model, snap.opt, snap.gen)
                continue
            best = max(best, psnr)
            epoch += 1
            report.history.append({"stage": name, "epoch": epoch, "loss": tot_loss / n, "psnr": psnr,
                                   "lr": opt.param_groups[0]["lr"]})
            bar_at(epoch)
            status = f"{name} ep {epoch}/{epochs} loss {tot_loss / n:.4f} PSNR {psnr:.2f}"
            bar.set_postfix_str(status)
            lines.say(status + left(steps_done(epoch)), force=epoch == epochs)
            if epoch % settings.ckpt_every == 0 or epoch == epochs:
                snap = _Snapshot(model, opt, gen, epoch, best)
                if epoch < epochs:
                    write_ckpt(epoch, best, state["stage_index"], model.state_dict(), opt.state_dict(),
                               gen.get_state())
            if halt and epoch < epochs:  # (at the stage's end, the stage's own checkpoint below)
                if epoch % settings.ckpt_every:
                    write_ckpt(epoch, best, state["stage_index"], model.state_dict(), opt.state_dict(),
                               gen.get_state())
                _stopped(name, epoch, world)
        # the stage is over: the next one starts from these weights with a fresh optimiser and schedule
        if stopped:
            if name == "fit" and snap.epoch == 0:  # (the network as it was made: a file of it would code noise)
                bar.close()
                if ckpt_path is not None and rank == 0:  # (epoch 0's: a rerun with another --lr is refused beside it)
                    ckpt_path.unlink(missing_ok=True)
                why = report.events[-1].split(": ", 1)[1].split(";")[0]
                raise SaicmError(f"the fit stopped where it began: it rolled back to epoch 0, its last checkpoint, "
                                 f"{settings.max_rollbacks + 1} times (the last: {why}), so nothing was learned and "
                                 "nothing is written; try a lower --lr (or --ckpt-every 1 to keep earlier epochs)")
            model.load_state_dict(snap.model)
            bar_at(epochs)  # (the stage's epochs left are not run)
        if name == "fit" and hasattr(model, "bake"):  # HNeRV: store the encoder's embeddings, drop the encoder
            model.bake(frames_t)
        state.update(stage_index=state["stage_index"] + 1, epoch=0, optim=None, gen=None, best=-math.inf,
                     lr_scale=1.0, rollbacks=0)
        write_ckpt(0, -math.inf, state["stage_index"], model.state_dict(), None, None)
        if halt and state["stage_index"] < len(stages):  # (after the last stage, the file is written)
            _stopped(name, epochs, world)
    bar.close()
    if state["masks"]:
        apply_masks(model, {k: v.to(device) for k, v in state["masks"].items()})
    model.to("cpu")
    report.seconds = time.perf_counter() - t0
    return report


def _stopped(stage: str, epoch: int, world: int) -> None:
    """A stop asked for: the checkpoint is written (by rank 0: the others wait for it, as torchrun ends them all
    when one ends), and the fit ends as Ctrl-C ends it."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    raise KeyboardInterrupt(f"interrupted after {stage} epoch {epoch}")


def _world() -> tuple[int, int]:
    """(processes, this process's rank) of an initialised torch.distributed group (torchrun), else (1, 0)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _all_finite(value: float, world: int, device: torch.device | str = "cpu") -> bool:
    """Whether the loss is finite in every process (all take the same rollback decision). The flag is reduced on
    ``device``, the fit's: NCCL, the GPUs' backend, reduces CUDA tensors only (a CPU one: "No backend type
    associated with device type cpu", at the first step of every multi-GPU encode)."""
    bad = 0.0 if math.isfinite(value) else 1.0
    if world > 1:
        import torch.distributed as dist

        t = torch.tensor([bad], device=device)
        dist.all_reduce(t)
        bad = float(t.item())
    return bad == 0.0


def _sum_gradients(model: nn.Module) -> None:
    import torch.distributed as dist

    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)


def _sum_over_processes(*values: float, device: torch.device | str = "cpu") -> tuple[float, ...]:
    """``values`` summed over the processes, on ``device`` (the fit's: :func:`_all_finite`)."""
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return tuple(float(v) for v in t)


def _restore(model: nn.Module, saved: list[Tensor]) -> None:
    with torch.no_grad():
        for p, s in zip(model.parameters(), saved):
            p.copy_(s)
