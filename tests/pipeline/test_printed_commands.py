"""Every command the audit of `ckpt-rescue demo`'s tree prints, followed as a person would: the `command`
of every record, every command on report.html (the full command its copy button gives), the audit's own
output, and then every command those print in turn (inspect's `to rebuild the index:`, a diagnosis's
`try:`). Each runs as printed, on a fresh copy of the tree at the audited path, and must succeed or say
exactly what is still missing: never a traceback, never a usage error, never a refusal for want of an
option the audit had."""

import contextlib
import html
import io
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from command_helpers import run_printed

from pipeline.demo_cmd import write_demo_registry, write_demo_tree
from recovery.report.readback import read_records

pytestmark = [pytest.mark.tf, pytest.mark.slow]

FOLLOWED = re.compile(r"^(?:to rebuild the index|try): (ckpt-rescue .*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("printed")
    tree, report, registry = base / "tree", base / "report", base / "architectures.yaml"
    write_demo_tree(tree)
    write_demo_registry(registry)
    audit = subprocess.run([sys.executable, "-m", "pipeline", "audit", str(tree), "--report-dir", str(report),
                            "--registry", str(registry), "--min-age", "0"], capture_output=True, text=True,
                           timeout=600)
    assert audit.returncode == 1, audit.stderr[-3000:]
    pristine = base / "pristine"
    shutil.copytree(tree, pristine)
    shutil.copytree(report, base / "report-pristine")
    return base, str(tree), str(report), str(registry), audit.stdout


@pytest.fixture(scope="module")
def second_night(tmp_path_factory):
    """The demo's two nights (pipeline/demo_cmd.py): audited with a registry and a vault, a day passes (a
    checkpoint rotated away, an index lost, a staged rebuild promoted by its command), audited again."""
    from pipeline.demo_cmd import _audit, a_day_passes

    base = tmp_path_factory.mktemp("printed-night-2")
    tree, first, report = base / "tree", base / "night-1", base / "report"
    registry, vault = base / "architectures.yaml", base / "vault"
    write_demo_tree(tree)
    write_demo_registry(registry)
    now = time.time()
    assert _audit(tree, first, registry, vault, now, []) == 1
    a_day_passes(tree, first)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert _audit(tree, report, registry, vault, now + 86400, []) == 1
    for path in (tree, report, vault):
        shutil.copytree(path, base / f"{path.name}-pristine")
    return base, str(tree), str(report), str(registry), out.getvalue()


def fresh(base, tree: str, report: str) -> None:
    """The tree, the report (and the vault, if any) as the audit left them (a command before may have
    promoted, rebuilt or kept an index in the vault)."""
    pairs = [(tree, base / "pristine"), (report, base / "report-pristine")]
    if (base / "tree-pristine").exists():
        pairs = [(tree, base / "tree-pristine"), (report, base / "report-pristine"),
                 (str(base / "vault"), base / "vault-pristine")]
    for path, pristine in pairs:
        shutil.rmtree(path)
        shutil.copytree(pristine, path)


def page_commands(report: str) -> list[str]:
    page = open(os.path.join(report, "report.html")).read()
    return [html.unescape(c) for c in re.findall(r'data-command="([^"]*)"', page)]


def judge(command: str, done: subprocess.CompletedProcess) -> str:
    """What following `command` did, or an assertion naming what went wrong."""
    out = done.stdout + done.stderr
    assert "Traceback" not in out, (command, out)
    assert done.returncode != 2, (command, out)        # a printed command is never a usage error
    verb = command.split()[1] if command.startswith("ckpt-rescue ") else command.split()[0]
    if verb in ("promote", "sh"):
        assert done.returncode == 0 and "promoted: " in done.stdout and "FAILED" not in done.stdout, (command, out)
    elif verb == "rebuild":
        if done.returncode != 0:       # refused: then it says why, and what to give it (never "pass --registry")
            assert done.returncode == 1 and "refused: " in done.stderr, (command, out)
            assert "no registry was used" not in done.stderr, (command, out)
        else:
            assert done.stdout.startswith("rebuilt ") and "wrote " in done.stdout, (command, out)
    elif verb == "audit":                     # the page's "Command:", to run the audit again
        assert done.returncode == 1 and "report: " in done.stdout, (command, out)
    elif verb == "inspect":
        assert done.returncode in (0, 1), (command, out)
    elif verb == "salvage":                   # offered only where it keeps tensors: it does so as printed
        assert done.returncode == 0 and "salvaged " in done.stdout, (command, out)
    else:
        raise AssertionError(f"a printed command of a kind this test does not know: {command}")
    return verb


@pytest.mark.parametrize("night", ["demo", "second_night"])
def test_every_printed_command_works_as_printed(request, night):
    base, tree, report, registry, stdout = request.getfixturevalue(night)
    records = read_records(report)
    printed = {r.command for r in records if r.command}
    printed |= set(page_commands(report))
    printed |= {c for c in re.findall(r"`([^`]*)`", stdout) if c.startswith(("sh ", "ckpt-rescue "))}
    assert {r.command for r in records if r.command} <= set(page_commands(report))    # the page offers each one
    followed, verbs = set(), []
    queue = sorted(printed)
    while queue:
        command = queue.pop(0)
        if command in followed:
            continue
        followed.add(command)
        fresh(base, tree, report)
        done = run_printed(command, cwd=report if command.startswith("sh promote.sh") else str(base))
        verbs.append(judge(command, done))
        queue += FOLLOWED.findall(done.stdout + done.stderr)
    assert {"promote", "inspect", "rebuild", "sh"} <= set(verbs), verbs
    assert not [c for c in followed if "inspect" in c and "--registry" not in c.split("|")[0]
                and c.startswith("ckpt-rescue inspect")], "an inspect command lost the audit's --registry"


def test_a_staged_rebuild_s_state_file_leads_to_a_rebuild_that_works(demo):
    """The path the issue found broken: a state file names an orphan only the registry can rebuild; its
    command inspects the orphan, whose suggestion is a rebuild that must carry the registry."""
    base, tree, report, registry, _ = demo
    state = next(r for r in read_records(report) if r.prefix == os.path.join(tree, "registry-only", "checkpoint"))
    fresh(base, tree, report)
    inspected = run_printed(state.command, cwd=str(base))
    (rebuild,) = FOLLOWED.findall(inspected.stdout)
    assert f"--registry {registry}" in rebuild
    done = run_printed(rebuild, cwd=str(base))
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.path.exists(os.path.join(tree, "registry-only", "ckpt-1.index"))


PYTHON_REPR = re.compile(r"""\bb'[^']*'|\bb"[^"]*"|\b[A-Z]\w+\(\w+=|\\x[0-9a-f]{2}(?=[^']*')""")


def test_nothing_a_user_reads_holds_a_python_repr(demo):
    """records.jsonl's words, failures.csv, report.html and the audit's output: names and bytes in words,
    never b'...', Record(...), BundleEntry(...)."""
    base, tree, report, registry, stdout = demo
    records = read_records(report)
    words = [stdout, open(os.path.join(report, "failures.csv")).read(),
             html.unescape(re.sub(r"<[^>]+>", " ", open(os.path.join(report, "report.html")).read()))]
    for r in records:
        words += [r.reason, r.source, *r.checks, *r.refusals]
        if isinstance(r.evidence, dict):
            words += [*r.evidence.get("confirmed", []), *r.evidence.get("cannot_confirm", [])]
    found = [(w[:200], m.group(0)) for w in words for m in PYTHON_REPR.finditer(w or "")]
    assert not found, found[:5]

