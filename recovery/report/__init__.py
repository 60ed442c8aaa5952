"""Records in, report files out: records.jsonl, failures.csv, promote.sh, summary.json, report.html.

Built to run without one place that holds every record. One concern per module:

- `schema.py`: the file names, the documented fields of records.jsonl and summary.json, one record as its line;
- `aggregates.py`: the counts, runs, causes and largest rebuilds (`add`, `merge`), which aggregates a
  record counts in (`keys_of`), and the Overview the files are rendered from;
- `latest.py`: whether each run's `checkpoint` state file resolves (within its directory, else a join by prefix);
- `fold.py`: records folded into the aggregates in one process, and the console's counters (`tally`);
- `summary.py`: summary.json and the exit code;
- `parts.py`: the lines each record contributes, written as sorted part files and merged back;
- `files.py`: the report directory's files (`finish`), and `write_reports` in one process;
- `page.py`, `promote.py`, `templates.py`: report.html and promote.sh from recovery/templates/;
- `readback.py`: reading a written report back.

transforms/report.py spreads the same steps over Beam workers.
"""
