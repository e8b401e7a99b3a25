"""The map of the code in docs/architecture.md ("What is where") cannot drift: every package and
module under src/emovox appears in it, and every path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP_PAGE = ROOT / "docs" / "architecture.md"
SOURCE = ROOT / "src" / "emovox"
#: A file the map names: a module, a page, a script, a file of the live page.
FILE_NAME = re.compile(r"[\w./-]+\.(?:py|md|html|js|css|sh)\b")


def map_paths() -> tuple[set[Path], set[Path]]:
    """(folders, files) the map names. A line that starts with ``name/`` is a folder inside the
    folder of the nearest less-indented folder line above it; the files a line names live in the
    folder it belongs to (its own, or the one it continues or is indented under)."""
    text = MAP_PAGE.read_text()
    assert "## What is where" in text, f"{MAP_PAGE}: no 'What is where' section"
    block = text.split("## What is where", 1)[1].split("```", 2)[1]
    folders, files = set(), set()
    stack: list[tuple[int, Path]] = []  # (indent, folder) of the enclosing folder lines
    for line in block.splitlines()[1:]:  # the first is the fence's language tag (none)
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        first, _, rest = line.strip().partition(" ")
        if first.endswith("/"):
            here = (stack[-1][1] if stack else ROOT) / first
            folders.add(here)
            stack.append((indent, here))
        else:
            here, rest = (stack[-1][1] if stack else ROOT), line
        files |= {here / name for name in FILE_NAME.findall(rest)}
    return folders, files


def test_every_path_the_map_names_exists():
    folders, files = map_paths()
    assert len(folders) > 10 and len(files) > 50  # the map was found and read
    assert not [str(f.relative_to(ROOT)) for f in folders if not f.is_dir()]
    assert not [str(f.relative_to(ROOT)) for f in files if not f.is_file()]


def test_every_package_and_module_is_on_the_map():
    folders, files = map_paths()
    packages = {p.parent for p in SOURCE.rglob("__init__.py")} - {SOURCE}
    modules = {p for p in SOURCE.rglob("*.py") if not p.name.startswith("__")}
    assert not sorted(str(p.relative_to(SOURCE)) for p in packages - folders)
    assert not sorted(str(p.relative_to(SOURCE)) for p in modules - files)


def test_the_readme_points_to_the_map():
    assert "docs/architecture.md#what-is-where" in (ROOT / "README.md").read_text()
