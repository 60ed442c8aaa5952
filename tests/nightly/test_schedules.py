"""The three nightly paths that run the audit on a machine of one's own, each run here for real the way
its scheduler runs it: the crontab line (through cron's `%` escaping, under flock), the systemd service
(its ExecStart after systemd's `%%`/`$$` escaping; both units pass `systemd-analyze verify`) and the
Kubernetes CronJob's container command (after Kubernetes' `$$` escaping; the manifest passes the Kubernetes
schema, and its podFailurePolicy maps the exit codes as EXIT_CODES means them).

Each is adapted as a platform engineer would (bucket names and install path changed, nothing else) to local
directories: a root with an orphaned latest checkpoint and a healthy one. The exit contract holds: the
command exits 1 (needs a person), the reports land in the night's own dated directory, and `ckpt-rescue
status` on that directory gives the same code.
"""

import fcntl
import json
import os
import shutil
import subprocess

import pytest
from nightly_artifacts import (
    BUCKETS,
    INSTALL_BIN,
    NIGHTLY,
    Unescaped,
    adapted,
    audit_commands,
    crontab_jobs,
    kubernetes_container,
    night_dirs,
    run_command,
    shell_script,
    systemd_service,
    venv_bin,
)
from source_helpers import orphan

from pipeline.cli import build_parser
from pipeline.cli import main as cli_main
from pipeline.options import audit_flags
from recovery.records import (
    EXIT_ATTENTION,
    EXIT_COULD_NOT_CHECK,
    EXIT_NOTHING_CHECKED,
    EXIT_OK,
    EXIT_USAGE,
)
from recovery.report.readback import read_summary

pytestmark = [pytest.mark.tf, pytest.mark.slow]
SYSTEMD = NIGHTLY / "systemd"
CRONJOB = NIGHTLY / "kubernetes" / "cronjob.yaml"
LOCK = "/run/lock/ckpt-rescue-nightly.lock"
YESTERDAY = 1796515200.0     # 2026-12-06T00:00Z, explicit: a nightly audit leaves files younger than 10 min alone


@pytest.fixture
def places(family_copy, tmp_path):
    """Local stand-ins for the example buckets: a root that needs a person, a healthy one, reports, vault."""
    damaged = family_copy("keras3_adam")
    orphan(damaged.prefix)        # the run's `checkpoint` names it: latest_checkpoint() is None: exit 1
    healthy = family_copy("tf_keras_weights")
    for tree in (damaged, healthy):       # saved yesterday: older than the audit's --min-age, so judged tonight
        for directory, _, files in os.walk(os.path.dirname(tree.prefix)):
            for name in files:
                os.utime(os.path.join(directory, name), (YESTERDAY, YESTERDAY))
    first, second = BUCKETS["roots"]
    return {first: os.path.dirname(damaged.prefix), second: os.path.dirname(healthy.prefix),
            BUCKETS["report_root"]: str(tmp_path / "reports"), BUCKETS["vault"]: str(tmp_path / "vault"),
            INSTALL_BIN: venv_bin(), LOCK: str(tmp_path / "nightly.lock")}


def _parses(argv: list[str]) -> None:
    """The real CLI parser (and Beam's, for what it forwards) accepts the artifact's command line."""
    args, extra = build_parser(argv[1]).parse_known_args(argv[1:])
    assert args.command == argv[1]
    if args.command == "audit":
        assert args.vault and args.report_dir, argv        # every nightly path: one vault, a dated directory
        audit_flags(extra, args.profile)
    else:
        assert not extra, extra


def _shellcheck(shell: str, script: str) -> None:
    checked = subprocess.run([os.path.join(venv_bin(), "shellcheck"), "--shell", shell, "-"], input=script,
                             capture_output=True, text=True, timeout=600)
    assert checked.returncode == 0, checked.stdout


def _ran_one_night(done, report_root: str) -> str:
    assert done.returncode == EXIT_ATTENTION, done.stdout + done.stderr
    (night,) = night_dirs(report_root)
    report_dir = os.path.join(report_root, night)
    assert read_summary(report_dir)["exit_code"] == EXIT_ATTENTION
    assert cli_main(["status", report_dir, "--wait", "0"]) == EXIT_ATTENTION
    return report_dir


def test_crontab_line_runs_the_night_under_flock(places, tmp_path):
    env, (command,) = crontab_jobs()
    assert env["CRON_TZ"] == "UTC" and env["MAILTO"] and "flock" in command
    (audit,) = audit_commands(command.replace("$(date -u +%Y-%m-%d)", "2026-12-06"))
    _parses(audit)
    _shellcheck(os.path.basename(env["SHELL"]), command)
    # cron runs SHELL -c COMMAND with the crontab's variables; HOME is the user's.
    env = {**{k: adapted(v, places) for k, v in env.items()}, "HOME": str(tmp_path)}
    env["PATH"] = f"{env['PATH']}:{os.environ['PATH']}"      # flock, date, tail: wherever this machine has them
    argv = [env["SHELL"], "-c", adapted(command, places)]
    report_root = places[BUCKETS["report_root"]]

    with open(places[LOCK], "w") as held:       # last night's audit still holds the lock: tonight is skipped
        fcntl.flock(held, fcntl.LOCK_EX)
        skipped = run_command(argv, env, cwd=str(tmp_path))
    assert skipped.returncode == 75 and "previous night still runs" in skipped.stdout, skipped.stdout
    assert night_dirs(report_root) == []

    done = run_command(argv, env, cwd=str(tmp_path))
    assert "exited 1" in done.stdout and "the log's tail" in done.stdout     # what cron mails
    _ran_one_night(done, report_root)
    with open(tmp_path / "ckpt-rescue-nightly.log") as log:
        assert "needs a person" in log.read()


def test_an_unescaped_percent_in_a_crontab_is_caught(tmp_path):
    broken = tmp_path / "crontab"
    broken.write_text((NIGHTLY / "crontab").read_text().replace("\\%", "%"))
    with pytest.raises(Unescaped):
        crontab_jobs(broken)


def test_systemd_units_verify_and_the_service_runs_the_night(places, tmp_path):
    units = tmp_path / "units"
    shutil.copytree(SYSTEMD, units)
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in units.iterdir())],
                              capture_output=True, text=True, timeout=600)
    assert verified.returncode == 0 and not verified.stdout.strip() and not verified.stderr.strip(), verified.stderr
    _, _, timer = systemd_service(SYSTEMD / "ckpt-rescue-nightly.timer")
    assert timer["Timer.Persistent"] == "true" and "02:30" in timer["Timer.OnCalendar"]
    env, argv, service = systemd_service(SYSTEMD / "ckpt-rescue-nightly.service")
    assert service["Service.Type"] == "oneshot" and service["Service.Restart"] == "on-failure"
    # Retried: only 3 (could not check). Failed at once: a finding, a usage error, nothing checked.
    assert {int(c) for c in service["Service.RestartPreventExitStatus"].split()} == \
        {EXIT_ATTENTION, EXIT_USAGE, EXIT_NOTHING_CHECKED}
    shell, script = shell_script(argv)
    (audit,) = audit_commands(script.replace("$(date -u +%Y-%m-%d)", "2026-12-06"))
    _parses(audit)
    _shellcheck(shell, script)

    env = {k: adapted(v, places) for k, v in env.items()}
    env["PATH"] = f"{env['PATH']}:{os.environ['PATH']}"
    done = run_command([argv[0], argv[1], adapted(script, places)], env, cwd=str(tmp_path))
    _ran_one_night(done, places[BUCKETS["report_root"]])


def test_systemd_expansions_are_caught(tmp_path):
    broken = tmp_path / "broken.service"
    broken.write_text((SYSTEMD / "ckpt-rescue-nightly.service").read_text().replace("%%Y", "%Y"))
    with pytest.raises(Unescaped, match="%Y"):
        systemd_service(broken)


def test_kubernetes_cronjob_validates_and_its_container_runs_the_night(places, tmp_path):
    validated = subprocess.run([os.path.join(venv_bin(), "kubernetes-validate"), "--strict", str(CRONJOB)],
                               capture_output=True, text=True, timeout=600)
    assert validated.returncode == 0 and "passed" in validated.stdout, validated.stdout + validated.stderr
    cronjob, argv = kubernetes_container(CRONJOB, "audit")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["timeZone"] == "Etc/UTC"
    job = spec["jobTemplate"]["spec"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"      # podFailurePolicy requires it
    assert job["backoffLimit"] >= 1
    outcomes = {code: _pod_failure_action(job["podFailurePolicy"], code) for code in range(8)}
    assert outcomes[EXIT_OK] is None                                 # success: no rule applies
    assert outcomes[EXIT_COULD_NOT_CHECK] == "Count"                 # retried, up to backoffLimit
    assert {c for c, action in outcomes.items() if action == "FailJob"} == \
        {EXIT_ATTENTION, EXIT_USAGE, EXIT_NOTHING_CHECKED}
    shell, script = shell_script(argv)
    (audit,) = audit_commands(script.replace("$(date -u +%Y-%m-%d)", "2026-12-06"))
    _parses(audit)
    _shellcheck(shell, script)

    env = {"PATH": f"{venv_bin()}:{os.environ['PATH']}", "HOME": str(tmp_path)}   # the image's PATH has it
    done = run_command([argv[0], argv[1], adapted(script, places)], env, cwd=str(tmp_path))
    _ran_one_night(done, places[BUCKETS["report_root"]])


def _pod_failure_action(policy: dict, exit_code: int) -> str | None:
    """The first rule whose onExitCodes matches a failed container's exit code (Kubernetes' order)."""
    if exit_code == 0:
        return None
    for rule in policy["rules"]:
        codes = rule.get("onExitCodes")
        if codes and (exit_code in codes["values"]) == (codes["operator"] == "In"):
            return rule["action"]
    return "Count"      # no rule matched: counted against backoffLimit


def test_the_manifest_checks_catch_a_policy_that_retries_findings_and_a_misspelled_field(tmp_path):
    import yaml

    (cronjob,) = [d for d in yaml.safe_load_all(CRONJOB.read_text()) if d]
    policy = cronjob["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]
    policy["rules"][0]["onExitCodes"]["values"] = [2]       # a finding (1) would be retried like exit 3
    assert _pod_failure_action(policy, EXIT_ATTENTION) == "Count"
    cronjob["spec"]["jobTemplate"]["spec"]["podFailurePolicies"] = cronjob["spec"]["jobTemplate"]["spec"].pop(
        "podFailurePolicy")
    broken = tmp_path / "cronjob.yaml"
    broken.write_text(json.dumps(cronjob))
    validated = subprocess.run([os.path.join(venv_bin(), "kubernetes-validate"), "--strict", str(broken)],
                               capture_output=True, text=True, timeout=600)
    assert validated.returncode != 0 and "podFailurePolicies" in validated.stdout + validated.stderr
