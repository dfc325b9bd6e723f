"""CompressAI, imported once with the FutureWarning it makes PyTorch print at import silenced.

CompressAI decorates helpers with ``torch.jit.script``, which PyTorch 2.14 deprecates with a two-line
``FutureWarning`` at import: CompressAI's to change, not a saicm user's to read (the command line filtered it
already; the Python API printed it). Only that import is silenced: the user's own ``torch.jit.script`` calls
still warn. saicm's modules that use CompressAI import this module first.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    import compressai  # noqa: F401
