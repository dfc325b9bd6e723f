"""Every relative link and image in the README, docs/ and the model cards points at a file that exists."""

import functools
import re
import shlex
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: [text](target) and ![alt](target), with an optional "title"; text may hold `code` and nested ![..](..)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_SRC = re.compile(r"<(?:img|a)\s[^>]*?(?:src|href)=[\"']([^\"']+)[\"']", re.IGNORECASE)
_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "CONTRIBUTING.md", ROOT / "saicm" / "weights" / "MODELS.md",
             ROOT / "checkpoints" / "README.md", ROOT / "benchmarks" / "README.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")  # http:, mailto:, ...


def link_targets(text: str) -> list[str]:
    """Link and image targets of a Markdown text, outside code blocks and inline code."""
    text = _FENCE.sub("", text)
    # inline code inside a link's text (e.g. [`container.py`](path)) must not hide the link: blank it, keep brackets
    text = _INLINE_CODE.sub(lambda m: "`" * len(m.group(1)) + "x" + "`" * len(m.group(1)), text)
    return [m.group(1) for m in _LINK.finditer(text)] + [m.group(1) for m in _HTML_SRC.finditer(text)]


def broken_links(md: Path) -> list[str]:
    """The relative link targets of ``md`` that name no existing file or folder (``#fragment`` stripped)."""
    bad = []
    for target in link_targets(md.read_text(encoding="utf-8")):
        if _is_external(target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            continue
        resolved = (ROOT / path.lstrip("/")) if path.startswith("/") else (md.parent / path)
        if not resolved.exists():
            bad.append(target)
    return bad


def heading_anchors(md: Path) -> set[str]:
    """GitHub's anchors for the headings of ``md``: lower case, punctuation dropped, spaces to hyphens."""
    anchors, seen = set(), {}
    for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", _FENCE.sub("", md.read_text(encoding="utf-8")), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).replace("`", "").lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def broken_anchors(md: Path) -> list[str]:
    """``file.md#anchor`` and ``#anchor`` targets of ``md`` whose heading does not exist."""
    bad = []
    for target in link_targets(md.read_text(encoding="utf-8")):
        if _is_external(target) or "#" not in target:
            continue
        path, anchor = target.split("#", 1)
        dest = md if not path else md.parent / path
        if dest.suffix == ".md" and dest.is_file() and anchor not in heading_anchors(dest):
            bad.append(target)
    return bad


def test_the_checker_finds_broken_links_and_ignores_what_it_should(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "img.png").write_bytes(b"")
    md = tmp_path / "docs" / "page.md"
    md.write_text(
        "[ok](../img.png) ![ok](../img.png#x \"title\") [`code` text](../img.png) [anchor](#here)\n"
        "[web](https://example.org/nothing) [mail](mailto:a@b.c)\n"
        "[broken](missing.md) ![broken image](../nope.png) [broken with fragment](gone.md#part)\n"
        "<img src=\"../absent.png\">\n"
        "`[not a link](in-code.md)`\n```\n[not a link](in-fence.md)\n```\n")
    assert broken_links(md) == ["missing.md", "../nope.png", "gone.md#part", "../absent.png"]


def test_the_benchmarks_index_lists_every_script_and_only_those():
    """benchmarks/README.md names every script of benchmarks/ (a newcomer found 39 and no index: contrib audit of
    session 61), and every script it names is there."""
    index = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w.-]+\.(?:py|sh))`", index))
    scripts = {f.name for f in (ROOT / "benchmarks").iterdir() if f.suffix in (".py", ".sh")}
    assert scripts - named == set(), f"not in benchmarks/README.md: {sorted(scripts - named)}"
    assert named - scripts == set(), f"named in benchmarks/README.md but not there: {sorted(named - scripts)}"


def test_every_relative_link_in_the_docs_exists():
    files = doc_files()
    assert ROOT / "README.md" in files and ROOT / "docs" / "README.md" in files
    bad = {str(f.relative_to(ROOT)): broken_links(f) for f in files}
    bad = {f: links for f, links in bad.items() if links}
    assert not bad, f"links to missing files: {bad}"


def test_anchors_name_existing_headings(tmp_path):
    md = tmp_path / "page.md"
    md.write_text("# Two-layer (scalable) files — in progress\n## `saicm` v5 (the default)\n## Same\n## Same\n"
                  "[a](#two-layer-scalable-files--in-progress) [b](#saicm-v5-the-default) [c](#same-1) [d](#nowhere)\n"
                  "```sh\n# not a heading\n```\n[e](#not-a-heading)\n")
    assert broken_anchors(md) == ["#nowhere", "#not-a-heading"]
    bad = {str(f.relative_to(ROOT)): broken_anchors(f) for f in doc_files()}
    bad = {f: links for f, links in bad.items() if links}
    assert not bad, f"links to missing headings: {bad}"


def test_readme_keeps_the_two_setup_commands_and_stays_short():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    assert len(text.splitlines()) <= 150


def _expand_braces(name: str) -> list[str]:
    """``a_{x,y}.png`` → ``a_x.png``, ``a_y.png`` (one level, as the figure table writes them)."""
    m = re.search(r"\{([^{}]*)\}", name)
    return [name] if m is None else [x for part in m.group(1).split(",")
                                     for x in _expand_braces(name[:m.start()] + part + name[m.end():])]


def figure_rows(text: str) -> dict[str, str]:
    """The images named in the figure table of docs/README.md → the licence column of their row."""
    section = text.split("## Figures in this folder", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 4 or cells[0] in ("file", "---"):
            continue
        for name in re.findall(r"`([^`]+\.(?:png|svg|jpg))`", cells[0]):
            for full in _expand_braces(name):
                rows[full] = cells[3]
                if "(and `.svg`)" in cells[0]:
                    rows[full.rsplit(".", 1)[0] + ".svg"] = cells[3]
    return rows


def test_every_figure_in_docs_has_a_row_that_names_its_photos_licence():
    # the docs once showed test photos whose licences forbid redistribution, with no credit (0.20.0 audit)
    rows = figure_rows((ROOT / "docs" / "README.md").read_text(encoding="utf-8"))
    assert figure_rows("## Figures in this folder\n| file | a | b | photos |\n|---|---|---|---|\n"
                       "| `v_{ap,psnr}.png` (and `.svg`) | x | y | none (plots) |\n") == {
        "v_ap.png": "none (plots)", "v_psnr.png": "none (plots)", "v_ap.svg": "none (plots)",
        "v_psnr.svg": "none (plots)"}
    images = sorted(p.name for p in (ROOT / "docs").iterdir() if p.suffix in (".png", ".svg", ".jpg"))
    assert images and not [i for i in images if i not in rows], "images in docs/ without a row in the figure table"
    assert not [n for n, lic in rows.items() if not lic], "figure rows without the photos' licence"
    assert not [n for n in rows if not (ROOT / "docs" / n).exists()], "figure rows naming no file"


# --- the commands shown in the docs exist, with the options they are given ---------------------------------------

_SH_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_SHELL_LANGS = {"", "sh", "bash", "shell", "console"}
_SEPARATORS = {";", ";;", "&&", "||", "|", "&", "(", ")", "do", "then", "else", "{", "}", "!"}
_PREFIXES = {"nohup", "time", "exec", "env", "sudo", "nice"}
_PYTHON = re.compile(r"^(\S*/)?python[\d.]*$")


def _separates(word: str) -> bool:
    return word in _SEPARATORS or re.fullmatch(r"[;&|()]+", word) is not None  # shlex joins ");" into one word


def shell_commands(text: str) -> list[tuple[int, list[str]]]:
    """``(line, words)`` of each ``saicm …``, ``python -m saicm …`` and ``python SCRIPT.py …`` command in shell
    text (continuation lines joined, comments, quotes and separators handled by shlex; variables left as words);
    ``words`` starts with ``saicm`` or the script's path."""
    found = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start, logical = i + 1, lines[i]
        while logical.endswith("\\") and i + 1 < len(lines):
            i += 1
            logical = logical[:-1] + " " + lines[i]
        i += 1
        lex = shlex.shlex(logical, posix=True, punctuation_chars=";&|()")
        lex.whitespace_split = True
        try:
            words = list(lex)
        except ValueError:  # an unclosed quote: prose in a console block
            continue
        at_start, k = True, 0
        while k < len(words):
            w = words[k]
            if _separates(w):
                at_start = True
            elif at_start and (re.match(r"^\w+=", w) or w.rsplit("/", 1)[-1] in _PREFIXES or w.startswith("-")):
                pass  # VAR=value, nohup, /usr/bin/time, env's or nice's options
            elif at_start and (w == "saicm" or _PYTHON.match(w) or w == "torchrun"):
                rest = []
                for v in words[k + 1:]:
                    if _separates(v):
                        break
                    rest.append(v)
                k += len(rest)
                if w == "saicm":
                    found.append((start, ["saicm"] + rest))
                else:  # python [-u …] -m saicm / SCRIPT.py; torchrun [its options] -m saicm
                    m = next((j for j in range(len(rest) - 1) if rest[j:j + 2] == ["-m", "saicm"]), None)
                    script = next((v for v in rest if not v.startswith("-")), None) if w != "torchrun" else None
                    if m is not None and all(v.startswith("-") for v in rest[:m]) or w == "torchrun" and m is not None:
                        found.append((start, ["saicm"] + rest[m + 2:]))
                    elif script is not None and script.endswith(".py"):
                        found.append((start, rest[rest.index(script):]))
                at_start = False
            else:
                at_start = False
            k += 1
    return found


def _saicm_problems(words: list[str], parser) -> list[str]:
    """What argparse would not accept by name in ``saicm …`` words: an unknown (sub)command or ``--option``."""
    import argparse
    used, k = ["saicm"], 1
    while k < len(words) and not words[k].startswith("-"):
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None:
            break
        if words[k] not in sub.choices:
            return [f"unknown command: {' '.join(used)} {words[k]}"]
        parser = sub.choices[words[k]]
        used.append(words[k])
        k += 1
    return [f"{' '.join(used)}: unknown option {w.split('=', 1)[0]}" for w in words[k:]
            if w.startswith("--") and len(w) > 2 and w.split("=", 1)[0] not in parser._option_string_actions]


@functools.cache
def _script_help(args: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str], tuple[frozenset[str], ...]] | None:
    """The ``--options`` and subcommands that ``python SCRIPT [SUB] --help`` names, and its required options (each
    as the set of its spellings: ``-o``, ``--output``); ``None`` if it fails. Once per session: the checker's own
    test and the docs' ask for some of the same scripts, a PyTorch import (~2 s) each."""
    r = subprocess.run([sys.executable, *args, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if r.returncode:
        return None
    subcommands = re.search(r"^usage:[^{]*\{([\w,-]+)\}", r.stdout, re.MULTILINE)
    return (frozenset(re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", r.stdout)) | {"--help"},
            frozenset(subcommands[1].split(",")) if subcommands else frozenset(), required_options(r.stdout))


def required_options(help_text: str) -> tuple[frozenset[str], ...]:
    """The options argparse's usage line shows outside brackets (required), each with the other spellings its
    option list gives (``-o OUTPUT, --output OUTPUT``)."""
    usage = re.search(r"^usage:(.*?)(?:\n\s*\n|\Z)", help_text, re.MULTILINE | re.DOTALL)
    depth, required = 0, []
    for word in re.findall(r"[\[\](){}]|[^\s\[\](){}]+", usage[1] if usage else ""):
        depth += (word in "[({") - (word in "])}")
        if depth == 0 and re.fullmatch(r"--?[a-zA-Z][\w-]*", word):
            required.append(word)
    spellings = [set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", line.strip().split("  ")[0]))
                 for line in help_text.splitlines() if re.match(r"^\s+-", line)]
    return tuple(frozenset(next((s for s in spellings if option in s), {option})) for option in required)


def _missing_required(words: list[str], required: tuple[frozenset[str], ...]) -> list[str]:
    """The required options a script's command ``words`` does not give; none for ``--help``, or when a bare
    ``$variable`` (not an option's value) may hold them."""
    if "--help" in words or "-h" in words or any(
            w.startswith("$") and not (i and words[i - 1].startswith("-")) for i, w in enumerate(words)):
        return []
    given = {w.split("=", 1)[0] for w in words}
    return [min(names, key=lambda n: (not n.startswith("--"), n)) for names in required if not names & given]


def command_problems(commands: list[tuple[str, int, list[str]]]) -> list[str]:
    """Every unknown saicm (sub)command or option, missing script, and option a script does not take."""
    from concurrent.futures import ThreadPoolExecutor

    from saicm.cli import build_parser

    parser = build_parser()
    ours = [words for _, _, words in commands if words[0] != "saicm" and "$" not in words[0]
            and words[0].startswith(("benchmarks/", "tests/", "saicm/")) and (ROOT / words[0]).is_file()]
    with ThreadPoolExecutor(4) as pool:
        scripts = sorted({(words[0],) for words in ours})
        helps = dict(zip(scripts, pool.map(_script_help, scripts)))
        subs = sorted({(words[0], words[1]) for words in ours if len(words) > 1 and helps[(words[0],)]
                       and words[1] in helps[(words[0],)][1]})
        helps.update(zip(subs, pool.map(_script_help, subs)))
    bad = []
    for where, line, words in commands:
        if words[0] == "saicm":
            problems = _saicm_problems(words, parser)
        elif "$" in words[0] or not words[0].startswith(("benchmarks/", "tests/", "saicm/")):
            problems = []  # a script of the reader's, or one named through a variable
        elif not (ROOT / words[0]).is_file():
            problems = [f"no such script: {words[0]}"]
        else:
            key = (words[0], words[1]) if (words[0], *words[1:2]) in helps and len(words) > 1 else (words[0],)
            if helps[key] is None:
                problems = [f"{' '.join(key)} --help fails"]
            else:
                problems = [f"{' '.join(key)}: unknown option {w.split('=', 1)[0]}" for w in words[len(key):]
                            if w.startswith("--") and len(w) > 2 and w.split("=", 1)[0] not in helps[key][0]]
                problems += [f"{' '.join(key)}: no {option} (required)"
                             for option in _missing_required(words[len(key):], helps[key][2])]
        bad += [f"{where}:{line}: {p}" for p in problems]
    return bad


def doc_commands() -> list[tuple[str, int, list[str]]]:
    """The commands of the docs' shell blocks and inline ``saicm …`` code, of the benchmark shell scripts and of the
    Makefile's recipes (the CHANGELOG is history: it may name what was renamed since)."""
    out = []
    for md in doc_files():
        if md.name == "CHANGELOG.md":
            continue
        text, rel = md.read_text(encoding="utf-8"), str(md.relative_to(ROOT))
        for m in _SH_FENCE.finditer(text):
            if m.group(1) in _SHELL_LANGS:
                first = text[:m.start(2)].count("\n")
                out += [(rel, first + line, words) for line, words in shell_commands(m.group(2))]
        prose = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for m in re.finditer(r"(?<!`)`((?:\w+=\S+ )*(?:saicm|python -m saicm) [^`\n]+)`(?!`)", prose):
            line = prose[:m.start()].count("\n") + 1
            # `saicm video encode/decode` and `saicm compress/decompress` name several commands at once
            alternatives = re.match(r"^(.*?saicm(?: \w+)*?) ([\w-]+(?:/[\w-]+)+)(.*)$", m.group(1))
            codes = ([f"{alternatives[1]} {a}{alternatives[3]}" for a in alternatives[2].split("/")]
                     if alternatives else [m.group(1)])
            out += [(rel, line, words) for code in codes for _, words in shell_commands(code)]
    for sh in sorted((ROOT / "benchmarks").glob("*.sh")):
        out += [(str(sh.relative_to(ROOT)), line, words) for line, words in shell_commands(sh.read_text())]
    out += [("Makefile", line, words) for line, words in shell_commands(makefile_recipes())]
    return out


def makefile_recipes() -> str:
    """The Makefile's recipe lines as shell text, on their own line numbers (other lines blank), each ``$(VAR)``
    as ``VAR`` (``$(BIN)/python`` reads as a Python, ``$(BIN)/python -m saicm demo`` as a saicm command): `make bench`
    ran a benchmark without the option it requires (its recipe was checked by no one)."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    return "\n".join(re.sub(r"\$\((\w+)\)", r"\1", line[1:]) if line.startswith("\t") else "" for line in lines)


def test_the_command_checker_finds_unknown_commands_options_and_scripts():
    text = ("OMP_NUM_THREADS=2 saicm compress a.png -o a.saicm --quality 3 --existing=skip && \\\n"
            "  saicm decompress a.saicm --layer machine   # saicm compress --in-a-comment\n"
            "for q in 1 4; do nohup saicm eval --codec x --threads 2 --bogus & done\n"
            "saicm video encode clip.mp4 --nope; python -m saicm strip in.saicm --fast | tee log\n"
            "x=$(saicm models --json); saicm compres a.png; echo 'saicm info --quoted'\n"
            "python benchmarks/fuzz_decode.py --cases 10 --seed 1 --wrong\n"
            "python benchmarks/no_such_script.py --x; python my_own.py --anything\n"
            "python benchmarks/seed_mean.py --help; python benchmarks/figures_saicm.py layers a.jpg --height 9 --nope\n"
            "torchrun --nproc_per_node=2 -m saicm train --bad; /usr/bin/time python -u -m saicm info --worse\n"
            "python benchmarks/seed_mean.py a.json b.json; python benchmarks/seed_mean.py --output=m.json a.json\n"
            "python benchmarks/seed_mean.py $opts a.json; python benchmarks/seed_mean.py -o $OUT/m.json $runs\n")
    commands = shell_commands(text)
    assert [line for line, _ in commands] == [1, 1, 3, 4, 4, 5, 5, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11]
    assert commands[1][1] == ["saicm", "decompress", "a.saicm", "--layer", "machine"]
    assert command_problems([("t", line, words) for line, words in commands]) == [
        "t:3: saicm eval: unknown option --bogus",
        "t:4: saicm video encode: unknown option --nope",
        "t:4: saicm strip: unknown option --fast",
        "t:5: unknown command: saicm compres",
        "t:6: benchmarks/fuzz_decode.py: unknown option --wrong",
        "t:7: no such script: benchmarks/no_such_script.py",
        "t:8: benchmarks/figures_saicm.py layers: unknown option --nope",
        "t:8: benchmarks/figures_saicm.py layers: no --output (required)",
        "t:9: saicm train: unknown option --bad",
        "t:9: saicm info: unknown option --worse",
        "t:10: benchmarks/seed_mean.py: no --output (required)",  # (-o or --output; `$opts` may hold it, line 11)
    ]
    makefile = shell_commands(makefile_recipes())
    assert ["saicm", "demo", "-o", "demo-out"] in [words for _, words in makefile]  # ($(BIN)/python -m saicm demo)


def test_every_command_in_the_docs_exists_with_its_options():
    commands = doc_commands()
    assert len(commands) > 300  # the docs' commands were found (340 shell and 270 inline in 0.19.0)
    bad = command_problems(commands)
    assert not bad, "commands the docs show that saicm or the script would refuse:\n" + "\n".join(bad)


def test_the_info_output_shown_in_video_md_is_what_saicm_prints(capsys):
    from saicm.cli import main

    text = (ROOT / "docs" / "video.md").read_text(encoding="utf-8")
    cmd = "$ saicm info tests/reference/shapes-64x48-8f-tiny.saicmv\n"
    shown = text.split(cmd, 1)[1].split("```", 1)[0]
    assert main(["info", str(ROOT / "tests" / "reference" / "shapes-64x48-8f-tiny.saicmv")]) == 0
    assert capsys.readouterr().out == shown


def benchmark_path_problems(commands: list[tuple[str, int, list[str]]]) -> list[str]:
    """A value the docs give to a benchmark script's ``--option`` that must name an existing path
    (``type=existing``, checked as the script parses its arguments) but names neither a file of the checkout, nor
    the shared data (``../shared/…``), nor a placeholder (``$VAR``, ``DIR``)."""
    checked = {str(f.relative_to(ROOT)): set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"[^)]*type=existing",
                                                        f.read_text(encoding="utf-8")))
               for f in (ROOT / "benchmarks").glob("*.py")}
    bad = []
    for where, line, words in commands:
        options = checked.get(words[0], set())
        for option, value in zip(words[:-1], words[1:]):
            if option in options and not (value.startswith("../shared/") or "$" in value or (ROOT / value).exists()
                                          or re.search(r"[A-Z]{3,}", value)):
                bad.append(f"{where}:{line}: {words[0]} {option} {value}: no such file or folder")
    return bad


def test_the_docs_give_benchmarks_paths_they_accept():
    # benchmarks check their path options as they parse them (0.23.0): a placeholder such as `--data x` for an
    # option the run does not use is refused in one line, before any work
    assert benchmark_path_problems([("t", 1, ["benchmarks/analysis_int8_probe.py", "--data", "x", "--calibrate",
                                              "../shared/data/photos/train", "--no-rd"]),
                                    ("t", 2, ["benchmarks/padding_cost.py", "--data", "x"])]) == [
        "t:1: benchmarks/analysis_int8_probe.py --data x: no such file or folder"]
    bad = benchmark_path_problems(doc_commands())
    assert not bad, "paths the docs pass to benchmarks that the scripts would refuse:\n" + "\n".join(bad)


def test_every_environment_variable_saicm_reads_is_in_the_one_table_and_help_names_it():
    """The variables saicm reads were spread over the usage guide (RANK, WORLD_SIZE, LOCAL_RANK in none of it) and
    `saicm --help` named $SAICM_MODELS alone: an operator configuring a container or a batch job had no list."""
    from saicm.cli import build_parser

    names = set()
    for path in (ROOT / "saicm").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"""(?:environ\.get\(|environ\.setdefault\(|environ\[|getenv\(|env_folder\(|xdg_dir\()"""
                                r"""\s*["']([A-Z][A-Z0-9_]*)["']""", text))
    assert {"SAICM_THREADS", "SAICM_MODELS", "SAICM_CACHE", "SAICM_ARCHITECTURES", "WORLD_SIZE",
            "XDG_CACHE_HOME"} <= names  # (the search finds them)
    usage = (ROOT / "docs" / "usage.md").read_text(encoding="utf-8")
    section = usage.split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    rows = {name for line in section.splitlines() if line.startswith("| `") for name in
            re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split(" | ", 1)[0])}
    assert names <= rows, sorted(names - rows)
    helped = build_parser().format_help()
    assert all(n in helped for n in names if n.startswith("SAICM_")) and "Environment variables" in helped


def test_the_exit_statuses_name_every_folder_job_that_exits_1_or_130():
    """`saicm strip FOLDER` (0.31.0) exits 1 when a file of it fails and 130 on SIGTERM, as the folder jobs of
    compress and decompress do, but usage.md's exit statuses named compress, decompress and masks alone: a script
    written from them took strip's 1 for 'any other error' (semver audit)."""
    text = " ".join((ROOT / "docs" / "usage.md").read_text().split())
    one = re.search(r"Exit statuses: 0 done; 1 a file of a (.*?) job failed", text).group(1)
    term = re.search(r"130 interrupted \(Ctrl-C, or SIGTERM in (.*?)\)", text).group(1)
    for command in ("compress", "decompress", "strip", "masks"):
        assert f"`{command}`" in one, command
    for command in ("compress", "decompress", "strip"):
        assert f"`{command}`" in term, command


def byte_table(doc: str, heading: str) -> list[tuple[str, str, str]]:
    """(field, size, contents) of the first ``| field | size | contents |`` table after ``heading`` in docs/``doc``."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1]
    table = text.split("| field | size | contents |\n", 1)[1].split("\n\n", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in table.splitlines()[1:]]
    return [(f.strip("`"), s, c) for f, s, c in rows]


def walk_table(rows, data: bytes, pos: int, **known) -> tuple[int, dict]:
    """Read ``data`` from ``pos`` as the docs' byte table ``rows`` says (big-endian; a row that says "only if flag bit
    1" or "version 2 only" when it applies; ``known``: sizes the table leaves to other fields, ``steps_bytes``);
    returns where the table ends and the fields read. The CRC row is checked over the bytes from ``pos``."""
    start, out = pos, {}

    def take(n):
        nonlocal pos
        pos += n
        assert pos <= len(data), "the table reads past the file"
        return data[pos - n:pos]

    def u(n):
        return int.from_bytes(take(n), "big")

    for field, size, contents in rows:
        if ("only if flag bit 1" in contents and not out["flags"] & 2) or \
                ("version 2 only" in contents and out["version"] != 2):
            continue
        if field == "crc32":
            assert size == "u32" and zlib.crc32(data[start:pos]) == u(4), "the CRC row does not check"
        elif m := re.fullmatch(r"(\d+) bytes", size):
            out[field] = take(int(m[1]))
        elif m := re.fullmatch(r"u(8|16|32) length \+ (UTF-8|ASCII|bytes)", size):
            out[field] = take(u(int(m[1]) // 8))
        elif m := re.fullmatch(r"u(8|16|32)", size):
            out[field] = u(int(m[1]) // 8)
            if field == "n shapes":
                assert contents.startswith("then per shape: u8 rank + rank × u16")
                out["shapes"] = [tuple(u(2) for _ in range(u(1))) for _ in range(out[field])]
            elif field == "n strings":
                assert contents.startswith("then per string: u32 length + bytes")
                out["strings"] = [take(u(4)) for _ in range(out[field])]
        elif size == "u32 + u32":
            out[field] = (u(4), u(4))
        elif size == "2 bytes per group":
            take(known["steps_bytes"])
        else:
            raise AssertionError(f"a size the test does not know: {size!r} ({field})")
    return pos, out


def test_the_byte_tables_of_the_docs_read_the_reference_files():
    """format.md and video.md copy the containers' layouts for readers without saicm's code (a camera's decoder):
    read with the docs' tables alone, every kind of reference file ends where its table ends, its CRCs check and its
    fields are what saicm reads (an independent implementer's audit: the tables had drifted from the docstring)."""
    from saicm.codec import container
    from saicm.video.bitstream import describe, unpack

    v1 = byte_table("format.md", "## Version 1 stream")
    changes = byte_table("format.md", "## Version 2 stream: large images in strips")
    i = [f for f, _, _ in v1].index("n strings")
    striped = v1[:i] + changes + v1[i + 1:]
    human = byte_table("format.md", "## Two-layer (scalable) files")
    ref = ROOT / "tests" / "reference"
    files = [ref / "astronaut-200x150-v5-q1.saicm", ref / "astronaut-200x150-v5-q4-v3.saicm",
             ref / "astronaut-96x64-scalable-b1-h4-v1.saicm", ref / "astronaut-200x150-scalable-b1-h4-v3.saicm",
             ROOT / "tests" / "corpus" / "alpha-zlib-bomb.saicm"]  # (its alpha plane: the only one committed)
    seen = set()
    for path in files:
        data = path.read_bytes()
        stream, machine_end = container.read_stream(data)
        h = stream.header
        end, got = walk_table(v1 if data[5] == 1 else striped, data, 0)
        assert end == machine_end, path.name
        assert (got["magic"], got["version"], got["model id"].decode(), got["weights"], got["quality"]) == \
            (container.MAGIC, h.version, h.model, h.weights_sha, h.quality), path.name
        assert (got["height"], got["width"], got["pad bottom"], got["pad right"], got["shapes"], got["flags"] & 1,
                len(got["strings"]), got.get("strip rows", 0), got.get("alpha")) == \
            (h.height, h.width, h.pad_bottom, h.pad_right, h.shapes, h.gray, len(stream.strings), h.strip_rows,
             stream.alpha), path.name
        seen |= {("format", h.version), ("alpha", stream.alpha is not None)}
        if end < len(data):
            layer = container.unpack_human(data[end:])
            end, got = walk_table(human, data, end)
            assert end == len(data), path.name
            assert (got["magic"], got["version"], got["model id"].decode(), got["weights"], got["base"],
                    got["machine"], got["quality"], got.get("strip rows", 0), got["shapes"], len(got["strings"])) == \
                (container.HUMAN_MAGIC, layer.version, layer.model, layer.weights_sha, layer.base_sha,
                 layer.machine_sha, layer.quality, layer.strip_rows, layer.shapes, len(layer.strings)), path.name
            seen.add(("human", layer.version))
    assert seen >= {("format", 1), ("format", 3), ("human", 1), ("human", 2), ("alpha", True)}
    clip = byte_table("video.md", "## The `.saicmv` format")
    for name in ("shapes-64x48-8f-tiny.saicmv", "shapes-64x48-8f-tiny-hnerv.saicmv"):
        data = (ref / name).read_bytes()
        s, info = unpack(data), describe(data)
        end, got = walk_table(clip, data, 0, steps_bytes=info["steps_bytes"])
        assert end == len(data), name
        assert (got["arch"].decode(), got["frames"], got["first"], got["width"], got["height"], got["bits"],
                got["coder"], len(got["symbols"])) == \
            (s.header.arch, s.header.frames, s.header.first, s.header.width, s.header.height, s.header.bits,
             s.header.coder, len(s.symbols)), name
