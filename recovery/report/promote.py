"""promote.sh: the script that puts every staged index in place, create-only, from wherever the report
directory is now. Its text is the template recovery/templates/promote.sh.j2; each staged record adds one
line that calls the template's `promote` function. With ckpt-rescue installed the script hands itself to
`ckpt-rescue promote` (recovery/promotion.py), which prints the same lines."""

import shlex

from tfbundle import index_filename

from .schema import one_line
from .templates import text_templates


def promote_line(record) -> str:
    """`promote STATUS STAGED TARGET DATA_BYTES` for a staged index: STAGED as the audit wrote it (the
    script finds it under its own directory), TARGET the index to create, DATA_BYTES what the data files
    beside it held when audited."""
    target = index_filename(record.prefix)
    if one_line(target) != target or one_line(record.index_path) != record.index_path:
        return "# skipped a name with a line break in it; promote it with its record's command\n"
    return " ".join(["promote", record.status, shlex.quote(record.index_path), shlex.quote(target),
                     str(int(record.data_bytes))]) + "\n"


def promote_script(summary: dict, lines):
    """promote.sh as chunks of text, with `lines` (promote_line's, in order) streamed through."""
    return text_templates().get_template("promote.sh.j2").generate(
        run_id=summary["run_id"], finished=summary["finished"],
        report_dir=shlex.quote(summary["report_dir"].rstrip("/")), report_dir_comment=one_line(summary["report_dir"]),
        lines=lines)
