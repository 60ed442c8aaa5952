"""promote.sh: the script that puts every staged index in place, create-only. Its text is the
template recovery/templates/promote.sh.j2; each staged record adds one line that calls the
template's `promote` (or `leave`) function."""

import shlex

from tfbundle import index_filename

from ..records import REBUILT
from .schema import one_line
from .templates import text_templates


def promote_line(record) -> str:
    """A line of promote.sh for a staged index: `promote STAGED TARGET`, or `leave` when an index is there.
    A name with a line break in it (object names may hold one) is written escaped, so that the script stays
    one call per line: `promote_escaped` undoes the escapes with printf (the template)."""
    target = index_filename(record.prefix)
    verb = "promote" if record.status == REBUILT else "leave"
    if one_line(target) != target or one_line(record.index_path) != record.index_path:
        return f"{verb}_escaped {shlex.quote(_escaped(record.index_path))} {shlex.quote(_escaped(target))}\n"
    return f"{verb} {shlex.quote(record.index_path)} {shlex.quote(target)}\n"


def _escaped(text: str) -> str:
    """`text` for printf's %b: a backslash doubled, every control character as `\\0NNN` (octal)."""
    return "".join("\\\\" if c == "\\" else f"\\0{ord(c):03o}" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def promote_script(summary: dict, lines):
    """promote.sh as chunks of text, with `lines` (promote_line's, in order) streamed through."""
    return text_templates().get_template("promote.sh.j2").generate(
        run_id=summary["run_id"], finished=summary["finished"], report_dir=summary["report_dir"], lines=lines)
