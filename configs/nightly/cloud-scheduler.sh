#!/usr/bin/env bash
# Cloud Scheduler -> Cloud Workflows -> Dataflow Flex Template, then `ckpt-rescue status` as a Cloud Run job.
# Run once from the repository root to set it up (change the names first; re-running updates what exists
# only where gcloud's commands do: delete a Scheduler job or Cloud Run job to change it).
#
# Why a workflow: the Flex Template launcher must not wait for the job, and Cloud Scheduler cannot put the
# night's date into a request body. Each night one workflow execution (configs/nightly/workflow.yaml) works
# out the night's report directory (REPORT_ROOT/YYYY-MM-DD, UTC), launches the template into it with the one
# vault, waits for the Dataflow job to end, and runs `ckpt-rescue status` on that directory: the execution
# fails when the audit's exit code is not 0, and the alert policy below pages on failed executions.
set -euo pipefail

PROJECT=my-gcp-project
REGION=europe-west4
IMAGE="$REGION-docker.pkg.dev/$PROJECT/ckpt-rescue/ckpt-rescue:0.1.0"
TEMPLATE=gs://ml-checkpoints/dataflow/templates/ckpt-rescue-audit.json
ROOTS=gs://ml-checkpoints/runs,gs://ml-checkpoints/exports
REPORT_ROOT=gs://ml-checkpoints/ckpt-rescue-reports
VAULT=gs://ml-checkpoints/ckpt-rescue-vault
REGISTRY=gs://ml-checkpoints/ckpt-rescue/architectures.yaml
TEMP_LOCATION=gs://ml-checkpoints/dataflow/temp
# Service accounts: Scheduler starts the workflow (roles/workflows.invoker); the workflow launches and reads
# Dataflow jobs and runs the status job (roles/dataflow.developer, roles/run.developer, and
# roles/iam.serviceAccountUser on the two below); the Dataflow workers read the roots and write the reports
# and the vault (roles/dataflow.worker, storage roles); the status job reads the reports.
SCHEDULER_SA="ckpt-rescue-scheduler@$PROJECT.iam.gserviceaccount.com"
WORKFLOW_SA="ckpt-rescue-workflow@$PROJECT.iam.gserviceaccount.com"
WORKER_SA="ckpt-rescue-worker@$PROJECT.iam.gserviceaccount.com"
STATUS_SA="ckpt-rescue-status@$PROJECT.iam.gserviceaccount.com"
NOTIFICATION_CHANNEL="projects/$PROJECT/notificationChannels/CHANNEL_ID"   # gcloud beta monitoring channels list

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. One image for the Flex Template launcher, the Dataflow workers and the status job; the template spec.
gcloud builds submit --project "$PROJECT" --tag "$IMAGE" --file configs/nightly/flex-template/Dockerfile .
gcloud dataflow flex-template build "$TEMPLATE" --project "$PROJECT" --image "$IMAGE" --sdk-language PYTHON \
  --metadata-file configs/nightly/flex-template/metadata.json

# 2. The status step: `ckpt-rescue status REPORT_DIR --wait 30m`, the directory given by each execution.
gcloud run jobs create ckpt-rescue-status --project "$PROJECT" --region "$REGION" --image "$IMAGE" \
  --command ckpt-rescue --args status --max-retries 0 --task-timeout 45m --service-account "$STATUS_SA"

# 3. The workflow, and the nightly trigger that starts it with the buckets as its argument.
gcloud workflows deploy ckpt-rescue-nightly --project "$PROJECT" --location "$REGION" \
  --source configs/nightly/workflow.yaml --service-account "$WORKFLOW_SA"
cat > "$work/argument.json" <<JSON
{"roots": "$ROOTS", "report_root": "$REPORT_ROOT", "vault": "$VAULT", "registry": "$REGISTRY",
 "template": "$TEMPLATE", "image": "$IMAGE", "worker_service_account": "$WORKER_SA",
 "temp_location": "$TEMP_LOCATION"}
JSON
# Workflows takes its argument as a JSON string inside the request body.
{ printf '{"argument": "'; tr -d '\n' < "$work/argument.json" | sed 's/\\/\\\\/g; s/"/\\"/g'; printf '"}\n'; } \
  > "$work/body.json"
gcloud scheduler jobs create http ckpt-rescue-nightly --project "$PROJECT" --location "$REGION" \
  --schedule "30 2 * * *" --time-zone UTC --http-method POST \
  --uri "https://workflowexecutions.googleapis.com/v1/projects/$PROJECT/locations/$REGION/workflows/ckpt-rescue-nightly/executions" \
  --oauth-service-account-email "$SCHEDULER_SA" \
  --headers Content-Type=application/json --message-body-from-file "$work/body.json"

# 4. Page on a failed night: any execution of the workflow that ends FAILED.
cat > "$work/policy.json" <<JSON
{
  "displayName": "ckpt-rescue nightly audit failed",
  "documentation": {"content": "The execution's error names the step. At audit_outcome: the Cloud Run job ckpt-rescue-status printed the audit's one-line summary and exited with its exit code (ckpt-rescue --help lists them); the reports are in the night's directory under $REPORT_ROOT.", "mimeType": "text/markdown"},
  "combiner": "OR",
  "conditions": [{
    "displayName": "an execution of ckpt-rescue-nightly failed",
    "conditionThreshold": {
      "filter": "resource.type = \"workflows.googleapis.com/Workflow\" AND resource.labels.workflow_id = \"ckpt-rescue-nightly\" AND metric.type = \"workflows.googleapis.com/finished_execution_count\" AND metric.labels.status = \"FAILED\"",
      "aggregations": [{"alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_DELTA"}],
      "comparison": "COMPARISON_GT", "thresholdValue": 0, "duration": "0s"
    }
  }],
  "notificationChannels": ["$NOTIFICATION_CHANNEL"]
}
JSON
gcloud alpha monitoring policies create --project "$PROJECT" --policy-from-file "$work/policy.json"
