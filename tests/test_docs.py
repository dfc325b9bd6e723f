"""Every relative link and image in the README, docs/ and the model cards points at a file that exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: [text](target) and ![alt](target), with an optional "title"; text may hold `code` and nested ![..](..)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_SRC = re.compile(r"<(?:img|a)\s[^>]*?(?:src|href)=[\"']([^\"']+)[\"']", re.IGNORECASE)
_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "saicm" / "weights" / "MODELS.md",
             ROOT / "checkpoints" / "README.md"]
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
