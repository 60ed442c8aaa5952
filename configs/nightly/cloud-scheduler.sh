#!/usr/bin/env bash
# Cloud Scheduler -> Dataflow Flex Template, nightly. Run once to set it up (review every value first).
# docs/running.md explains each step.
set -euo pipefail
PROJECT=my-gcp-project
REGION=europe-west4
IMAGE="$REGION-docker.pkg.dev/$PROJECT/ckpt-rescue/ckpt-rescue:0.1.0"
TEMPLATE=gs://ml-checkpoints/dataflow/templates/ckpt-rescue-audit.json
SCHEDULER_SA="ckpt-rescue-scheduler@$PROJECT.iam.gserviceaccount.com"   # needs roles/dataflow.developer
WORKER_SA="ckpt-rescue-worker@$PROJECT.iam.gserviceaccount.com"         # bucket read, report-dir write

# 1. the image (launcher + workers) and the template spec
gcloud builds submit --project "$PROJECT" --tag "$IMAGE" --file configs/nightly/flex-template/Dockerfile .
gcloud dataflow flex-template build "$TEMPLATE" --project "$PROJECT" --image "$IMAGE" --sdk-language PYTHON \
  --metadata-file configs/nightly/flex-template/metadata.json

# 2. the nightly trigger: a POST to flexTemplates:launch; {{date}} is not expanded by Scheduler, so
#    the report directory is fixed and each run replaces the previous reports (summary.json keeps its run_id)
cat > /tmp/ckpt-rescue-launch.json <<JSON
{
  "launchParameter": {
    "jobName": "ckpt-rescue-nightly",
    "containerSpecGcsPath": "$TEMPLATE",
    "parameters": {
      "roots": "gs://ml-checkpoints/runs,gs://ml-checkpoints/exports",
      "report_dir": "gs://ml-checkpoints/ckpt-rescue-reports/latest",
      "registry": "gs://ml-checkpoints/ckpt-rescue/architectures.yaml",
      "sdk_container_image": "$IMAGE"
    },
    "environment": {"serviceAccountEmail": "$WORKER_SA", "maxWorkers": 32,
                    "tempLocation": "gs://ml-checkpoints/dataflow/temp"}
  }
}
JSON
gcloud scheduler jobs create http ckpt-rescue-nightly --project "$PROJECT" --location "$REGION" \
  --schedule "30 2 * * *" --time-zone UTC --http-method POST \
  --uri "https://dataflow.googleapis.com/v1b3/projects/$PROJECT/locations/$REGION/flexTemplates:launch" \
  --oauth-service-account-email "$SCHEDULER_SA" \
  --headers Content-Type=application/json --message-body-from-file /tmp/ckpt-rescue-launch.json
