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

import re
import warnings

from ..train.compiling import importing_dynamo

#: the filter that silences it, as ``warnings.filterwarnings`` enters it in ``warnings.filters``
_FILTER = ("ignore", re.compile(r"`torch\.jit\.script` is deprecated", re.I), FutureWarning, None, 0)

# (this filter alone is added and then taken out: ``warnings.catch_warnings`` put the whole list back as it was
# before the import, which takes seconds, so a filter that a service's other thread set meanwhile was lost)
_added = _FILTER not in warnings.filters
if _added:
    warnings.filterwarnings("ignore", message=_FILTER[1].pattern, category=FutureWarning)
try:
    with importing_dynamo():  # (an import that failed before is not retried: see there)
        import compressai  # noqa: F401
finally:
    if _added:
        try:
            warnings.filters.remove(_FILTER)
        except ValueError:  # (the caller reset the filters meanwhile)
            pass
        getattr(warnings, "_filters_mutated", lambda: None)()
