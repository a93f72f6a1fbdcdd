"""The layout promises of the front-end redesign, checked on every run: modules a reader holds in one sitting,
one arrow between the processes (the CLI's composition root), every tool findable from the tree, and the
README's map of the tree kept true."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "shared" / "binance_common", ROOT / "daemon" / "binance_streamd", ROOT / "mcp_server" / "binance_mcp"]
MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    long = {str(f.relative_to(ROOT)): n for pkg in PACKAGES for f in pkg.rglob("*.py")
            if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_the_front_end_imports_the_daemon_only_in_its_composition_root() -> None:
    pkg = ROOT / "mcp_server" / "binance_mcp"
    offenders = []
    for f in pkg.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "binance_streamd" for n in names) and f.name != "cli.py":
                offenders.append(str(f.relative_to(ROOT)))
    assert not offenders, offenders


def test_every_tool_is_listed_where_it_lives() -> None:
    from binance_mcp import tools

    table = tools.__doc__ or ""
    for spec in tools.ALL:
        module = spec.fn.__module__.rsplit(".", 1)[-1]
        row = re.search(r"``" + module + r"``\s+(.*?)(?=\n``|\n=)", table, re.S)
        assert row and spec.name in row.group(1), f"{spec.name} is not listed under {module} in tools/__init__.py"
    assert len({s.name for s in tools.ALL}) == len(tools.ALL)


def test_readme_maps_every_package_of_the_front_end() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    front = ROOT / "mcp_server" / "binance_mcp"
    for d in sorted(p for p in front.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        assert f"{d.name}/" in section, f"README's 'Where things live' does not mention {d.name}/"
