"""One exit-code table: EXIT_CODES in recovery/records.py. `--help` prints it (generated), and the tables
in the README and docs/running.md are held to it here, row for row, with no second list of codes beside
them that could disagree."""

import re

import pytest
from repo_paths import REPO

from pipeline.cli import COMMANDS, main
from recovery.records import EXIT_CODES


def markdown_table() -> str:
    return "| code | name | meaning |\n|---|---|---|\n" + "".join(
        f"| `{code}` | {label} | {meaning} |\n" for code, label, meaning in EXIT_CODES)


def problems(text: str) -> list[str]:
    found = []
    if text.count(markdown_table()) != 1:
        found.append("the exit-code table is missing, differs from EXIT_CODES, or is shown twice")
    if text.count("| code | name | meaning |") != 1:
        found.append("a second exit-code table")
    if re.search(r"Exit codes?:\s*(\*\*|`)\d", text):   # the old prose lists ("Exit codes: **0** ...")
        found.append("a list of exit codes in prose beside the table")
    return found


@pytest.mark.parametrize("doc", ["README.md", "docs/running.md"])
def test_the_docs_show_the_table_once_and_no_other_list_of_codes(doc):
    assert problems((REPO / doc).read_text()) == [], doc


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in COMMANDS])
def test_every_help_prints_the_table(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    for code, label, meaning in EXIT_CODES:
        assert f"{code} {label}: {' '.join(meaning.split())}" in shown


def test_the_check_sees_a_disagreeing_row_and_a_second_list():
    readme = (REPO / "README.md").read_text()
    assert problems(readme.replace("| `3` | could not check |", "| `3` | retry |"))
    assert problems(readme + "\nExit codes: **0** nothing needs a person, **1** something does.\n")
