"""What a newcomer (or a packager) checks first: license, version, changelog, and links from
the installed code to documentation that exists."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import langchain_websim

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
SOURCE = PROJECT["urls"]["Source"]
PACKAGE = ROOT / "langchain_websim"


def test_the_license_file_is_the_mit_license_the_metadata_names() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    sdist = PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert {"LICENSE", "CHANGELOG.md", "README.md"} <= set(sdist)


def test_version_matches_the_metadata_and_the_changelog() -> None:
    version = langchain_websim.__version__
    assert version == PROJECT["version"]
    assert "__version__" in langchain_websim.__all__
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.MULTILINE)
    assert headings[0] == "Unreleased"
    assert version in headings


def test_links_in_the_code_are_absolute_and_point_at_files_that_exist() -> None:
    linked: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        # A relative "docs/x.md" means nothing to someone reading an installed package.
        relative = re.findall(r"(?<![/\w])docs/[\w.-]+\.md", text)
        assert relative == [], f"{path.name} refers to {relative} relatively"
        for target in re.findall(rf"{re.escape(SOURCE)}/(?:blob|tree)/main/([\w./-]+)", text):
            linked.add(target.rstrip("."))
    assert {"docs/chat.md", "docs/image_tool.md", "docs/emulator.md", "README.md"} <= linked
    for target in linked:
        assert (ROOT / target).exists(), target
    for url in PROJECT["urls"].values():
        assert url.startswith(SOURCE)
