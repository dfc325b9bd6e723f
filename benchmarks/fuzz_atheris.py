"""Coverage-guided fuzzing of the decoders with atheris (libFuzzer over Python).

    pip install atheris
    python benchmarks/fuzz_atheris.py fuzz-corpus/ -- -max_total_time=1800 -timeout=10 -rss_limit_mb=2048
    python benchmarks/fuzz_atheris.py fuzz-corpus/ --target container -- -runs=200000   # the parsers alone

``benchmarks/fuzz_decode.py`` mutates valid files blindly (structure-aware, but
without feedback); this harness lets libFuzzer keep every input that reaches
new lines or branches of saicm's own code (only ``saicm`` is instrumented, not
NumPy, onnxruntime or PyTorch) and mutate those further, so it walks into the
decoders' rarer paths. Each input is what a stranger could send:

- ``--target decode`` (default): ``describe``, ``strip`` and ``decompress``
  (the human layer of a two-layer file, whatever the file's kind) on the
  portable engine, or ``saicm.video.decode`` for a ``.saicmv`` clip;
- ``--target container``: ``describe`` and ``strip`` only (headers, layers,
  checks; thousands of inputs a second).

A failure is what the project promises never happens: an exception other than
saicm's one-line ``SaicmError`` (atheris prints its traceback and saves the
input as ``crash-*``), a crash of native code, an input slower than libFuzzer's
``-timeout`` or a process beyond ``-rss_limit_mb``. Failing inputs go to
``tests/corpus/`` once fixed.

The corpus folder is seeded, when empty, with the files ``fuzz_decode.py``
starts from (the shipped models' files in formats 1 and 3, alpha, grayscale,
two-layer, a tiny context model's, two tiny clips) and the crafted files of
``tests/corpus/``; the tiny models are saved to a temporary folder put in
``$SAICM_MODELS``, so their files name them as any user's model would. Options
after ``--`` go to libFuzzer (``-help=1`` lists them); ``-max_total_time`` and
``-timeout`` are the usual ones, ``-jobs``/``-workers`` run several processes.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: the subpackages whose code the decoders run (instrumented for coverage)
DECODER_MODULES = ("saicm.codec", "saicm.engine", "saicm.entropy", "saicm.models", "saicm.video")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                usage="%(prog)s CORPUS [options] [-- libFuzzer options]")
    p.add_argument("corpus", help="corpus folder (created and seeded when missing or empty); libFuzzer adds the "
                   "inputs that reach new code to it")
    p.add_argument("--target", choices=("decode", "container"), default="decode",
                   help="what each input goes through (default decode)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="the decoders' pixel limit, as a user would pass it (default: none passed, saicm's own "
                   "defaults apply)")
    p.add_argument("--engine", default="auto", help="the engine of the decodes (default auto)")
    p.add_argument("--structured", type=float, default=0.2,
                   help="share of mutations made by saicm.codec.fuzz's structure-aware mutator; the rest are "
                   "libFuzzer's, with the CRCs recomputed 9 times in 10 (default 0.2)")
    p.add_argument("--no-seeds", action="store_true", help="do not seed an empty corpus folder")
    if "--" in argv:
        i = argv.index("--")
        ours, fuzzer = argv[:i], argv[i + 1:]
    else:
        ours, fuzzer = argv, []
    return p.parse_args(ours), fuzzer


def instrumented_imports():
    """Import saicm's decoding code inside atheris' instrumentation (only modules first imported here get the
    coverage hooks, so this runs before anything else imports saicm)."""
    import importlib
    import pkgutil

    import atheris

    with atheris.instrument_imports(include=["saicm"]):
        import saicm

        for name in DECODER_MODULES:
            pkg = importlib.import_module(name)
            for mod in pkgutil.walk_packages(pkg.__path__, name + "."):
                if mod.name.endswith(".fuzz"):  # the mutator of fuzz_decode.py, not a decoder
                    continue
                try:
                    importlib.import_module(mod.name)
                except ImportError:  # an optional back-end not installed (openvino)
                    pass
    return saicm


def seed_corpus(corpus: Path, tmp: Path) -> int:
    """Write the starting files into ``corpus``: fuzz_decode.py's seeds and tests/corpus/."""
    from fuzz_decode import make_seeds

    n = 0
    for s in make_seeds(tmp):
        for seed in (s, s.get("or")):
            if seed:
                (corpus / f"seed-{seed['name']}").write_bytes(seed["data"])
                n += 1
    for f in sorted((ROOT / "tests" / "corpus").glob("*.saicm*")):
        (corpus / f"crafted-{f.name}").write_bytes(f.read_bytes())
        n += 1
    return n


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a, fuzzer_args = parse_args(argv)
    try:
        import atheris
    except ImportError:
        sys.exit("fuzz_atheris.py needs atheris: pip install atheris")
    tmp = Path(tempfile.mkdtemp(prefix="saicm-atheris-"))
    os.environ["SAICM_MODELS"] = str(tmp)  # the tiny seed models resolve by name, as a user's models do
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import warnings

    warnings.filterwarnings("ignore")
    instrumented_imports()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    corpus = Path(a.corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    if not a.no_seeds:
        if any(corpus.iterdir()):
            # the tiny models must exist for the seeded files to reach their decoders: rebuild them
            from fuzz_decode import make_seeds

            make_seeds(tmp)
        else:
            print(f"seeded {corpus} with {seed_corpus(corpus, tmp)} files", file=sys.stderr)

    import torch

    torch.set_num_threads(1)
    from fuzz_decode import read_all

    from saicm.errors import SaicmError

    def one_line(e: SaicmError) -> None:
        if "\n" in str(e):
            raise AssertionError(f"a SaicmError of more than one line: {e!r}")

    def test_one_input(data: bytes) -> None:
        try:
            read_all(data, max_pixels=a.max_pixels, engine=a.engine, video=data[:5] == b"SAICV",
                     decode=a.target == "decode", on_error=one_line)
        except SaicmError as e:
            one_line(e)

    for f in sorted(corpus.iterdir()):  # warm up: models loaded and sessions built before the clock starts
        try:
            test_one_input(f.read_bytes())
        except Exception as e:  # noqa: BLE001 — reported again by libFuzzer with the input
            print(f"warning: {f.name} fails already: {type(e).__name__}: {e}", file=sys.stderr)
    from saicm.codec.fuzz import fix_crcs, mutate

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        """libFuzzer's byte mutations with the CRCs made valid again (most of the time: a CRC check that
        rejects every mutated byte would hide the code behind it), or saicm's structure-aware ones."""
        rng = random.Random(seed)
        if rng.random() < a.structured:
            try:
                return mutate(data, rng)[0][:max_size]
            except Exception:  # noqa: BLE001 — an input the structure-aware mutator cannot parse
                pass
        out = atheris.Mutate(data, max_size)
        return fix_crcs(out) if rng.random() < 0.9 else out

    atheris.Setup([sys.argv[0], *fuzzer_args, str(corpus)], test_one_input, custom_mutator=mutator)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
