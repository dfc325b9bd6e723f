"""Training settings (no heavy imports, so the CLI can show defaults cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field

# λ of CompressAI's MSE quality points 1..6 (same L = R + λ·255²·D convention).
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)
# Hidden and latent channels of a model trained from scratch (``--N``, ``--M``).
DEFAULT_N = 64
DEFAULT_M = 128
DEFAULT_ARCHITECTURE = "gained-mean-scale-hyperprior"
# What the synthesis transforms see in training (``--quant``; the architecture's forward(quant=...)).
QUANT_MODES = ("noise", "ste")
# Mixed precision of the transforms (``--amp``).
AMP_MODES = ("off", "bf16")
#: the options a run leaves unset, when they are not the run's own (``--resume`` takes the run's: trainer)
def learning_rate_ok(lr: float) -> bool:
    """Whether ``lr`` is a learning rate a run can take: above 0 and at most 1 (Adam moves each weight by up to the
    rate a step, so above 1 a run only diverges; 1e41 was PyTorch's overflow traceback at the first step). NaN is
    not. The one bound of ``train --lr``, ``video encode --lr``, ``TrainConfig`` and ``FitSettings``."""
    return 0 < lr <= 1


RUN_DEFAULTS = dict(loss="mse", off_mask_weight=0.0, freeze=(), steps=10000, batch=16, patch=128, lr=1e-4, seed=0,
                    log_every=25, ckpt_every=200, amp="off", quant="noise")


@dataclass
class TrainConfig:
    data: str | list  # one folder or several
    out: str
    # None: the init model's with init, scalable-fusion with base, else DEFAULT_ARCHITECTURE
    architecture: str | None = None
    N: int | None = None  # hidden channels; None: --init's, else the architecture's default (a larger N than --init's widens it)
    M: int | None = None  # latent channels; None: --init's (which cannot be changed), else the architecture's default
    lambdas: tuple | None = None  # None: DEFAULT_LAMBDAS, or those of --init
    loss: str | None = None  # None: "mse", or the run's with --resume (so are the other None options: RUN_DEFAULTS)
    base: str | None = None  # scalable-fusion: the frozen machine-layer model (name or path)
    m: int | None = None  # scalable-fusion: slices of the base latent the additional latent covers (None: 4)
    slice_channels: int | None = None  # scalable-fusion: channels per slice (None: 32)
    condition: str | None = None  # scalable-fusion: "none" (None: the paper) or "base" (conditional residual)
    human_init: str | None = None  # scalable-fusion: start the human layer from this MSE model
    fusion_channels: str | None = None  # scalable-fusion: "first" (None: the paper's) or "energy" (largest variance)
    freeze: tuple | None = None  # parameter-name prefixes kept fixed (e.g. "g_s", "add.g_a"); None: none
    context_hidden: int | None = None  # gained-context-hyperprior: hidden channels of its contexts (None: default/--init's)
    context_kernel: int | None = None  # gained-context-hyperprior: channel-context kernel size (None: default/--init's)
    context_groups: tuple[int, ...] | None = None  # gained-context-hyperprior: channels per group (None: default/--init's)
    context_checkerboard: bool | None = None  # gained-context-hyperprior: two passes per group (None: default/--init's)
    masks: str | list | None = None  # one mask folder per data folder
    off_mask_weight: float | None = None
    init: str | None = None
    steps: int | None = None
    batch: int | None = None
    patch: int | None = None
    lr: float | None = None
    aux_lr: float = 1e-3
    warmup: int = 100
    decay_from: float = 0.8
    clip: float = 1.0
    max_bad_steps: int = 20
    seed: int | None = None  # None: 0, or the run's with --resume
    log_every: int | None = None
    ckpt_every: int | None = None
    resume: bool = False
    device: str = "auto"  # see saicm.device.resolve_device
    amp: str | None = None  # None: "off"; "bf16": transforms under torch.autocast(bfloat16); entropy models stay fp32
    quant: str | None = None  # None: "noise"; "ste": synthesis sees coder-rounded latents (straight-through), rates keep the noise proxy
    compile: bool = False  # torch.compile the training step (model + loss); the same model and checkpoints
    progress: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        """The hidden channels of a model built from scratch: ``N``, or ``DEFAULT_N``."""
        return DEFAULT_N if self.N is None else int(self.N)

    @property
    def latent(self) -> int:
        """The latent channels of a model built from scratch: ``M``, or ``DEFAULT_M``."""
        return DEFAULT_M if self.M is None else int(self.M)


def with_defaults(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its unset run options (None) at :data:`RUN_DEFAULTS`."""
    from dataclasses import replace

    return replace(cfg, **{k: v for k, v in RUN_DEFAULTS.items() if getattr(cfg, k) is None})
