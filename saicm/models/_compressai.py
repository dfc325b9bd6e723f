"""CompressAI, imported once with the FutureWarning it makes PyTorch print at import silenced.

CompressAI decorates helpers with ``torch.jit.script``, which PyTorch 2.14 deprecates with a two-line
``FutureWarning`` at import: CompressAI's to change, not a saicm user's to read (the command line filtered it
already; the Python API printed it). Only that import is silenced: the user's own ``torch.jit.script`` calls
still warn. saicm's modules that use CompressAI import this module first.

Importing CompressAI imports ``torch._dynamo`` (through torch_geometric), which makes PyTorch's kernel cache
folder at once (``$TORCHINDUCTOR_CACHE_DIR``, else ``torchinductor_$USER`` in the temporary folder), whether or
not anything is compiled. Where it cannot (a container with a read-only ``/tmp``, ``TMPDIR`` naming a missing
folder), the import fails: that is one :class:`~saicm.errors.SaicmError` line naming both variables, not a traceback of ~50
lines from ``saicm eval`` or ``saicm demo``.
"""

import warnings

from ..train.compiling import importing_dynamo

with importing_dynamo():  # (an import that failed before is not retried: see there)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        import compressai  # noqa: F401
