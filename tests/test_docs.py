"""The docs hold together: every relative link in README.md and docs/ resolves, and the README's quick start parses.

Fast (no TensorFlow): links are checked on disk (a `#fragment` against the target's headings, slugged as GitHub
does), and each quick-start command is parsed by the real Typer app, its subcommand's `--help` naming every option
the command uses.
"""

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conftest import REPO_ROOT
from cifar_synth.cli import app  # the package registers every command on the app

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    """The text without code blocks and inline code, where a `[x](y)` is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in FENCE.sub("", markdown.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _relative_links(doc: Path) -> list[str]:
    return [target for target in LINK.findall(_prose(doc.read_text(encoding="utf-8")))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: are not checked here


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(doc):
    broken = []
    for target in _relative_links(doc):
        path_part, _, fragment = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in _anchors(path):
            broken.append(f"{target}: no heading #{fragment}")
    assert not broken, f"{doc.relative_to(REPO_ROOT)}: " + "; ".join(broken)


def test_the_link_check_sees_links():
    """A guard against a pattern that silently matches nothing."""
    assert len(_relative_links(REPO_ROOT / "README.md")) >= 10
    assert _slug("A shared start (`--class shared`, `--init-from`)") == "a-shared-start---class-shared---init-from"


def _quick_start_commands() -> list[list[str]]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "cifar-synth":
                commands.append(words[1:])
    return commands


def _split(words: list[str]):
    """The subcommand path (`data info`), its command (Typer's click command), and its arguments."""
    command = typer.main.get_command(app)
    path = []
    while words and words[0] in getattr(command, "commands", {}):  # a group: Typer may bundle its own click
        command = command.commands[words[0]]
        path.append(words.pop(0))
    return path, command, words


def test_the_quick_start_has_the_main_job():
    names = [" ".join(_split(list(words))[0]) for words in _quick_start_commands()]
    assert {"train", "export", "evaluate", "show"} <= set(names), names


@pytest.mark.parametrize("words", _quick_start_commands(), ids=" ".join)
def test_every_quick_start_command_parses(words):
    path, command, arguments = _split(list(words))
    assert path, f"no subcommand in cifar-synth {' '.join(words)}"
    help_text = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert help_text.exit_code == 0, help_text.output
    for option in (word.split("=", 1)[0] for word in arguments if word.startswith("--")):
        assert option in help_text.output, f"{option} is not in `cifar-synth {' '.join(path)} --help`"
    # The real parser with the real arguments (types and choices checked; nothing runs).
    command.make_context(" ".join(["cifar-synth", *path]), list(arguments))
