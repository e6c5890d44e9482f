"""Drives moto's Step Functions for jobs/tests/it/orchestration.rs (run with the test venv's
Python; the moto endpoint is $SLUICE_MOTO_ENDPOINT).

    moto_stepfunctions.py setup      -> {"bucket": ..., "queue_url": ...} (a new lake bucket and
                                        jobs dead-letter queue)
    moto_stepfunctions.py run < req  -> a report of one execution

A run request: {"bucket", "queue_url", "name" (state machine), "definition" (substitutions
filled in), "plan_key", "items" (the plan object written there), "lambda_results" (the Lambda
answers moto hands out in order; with none left its Lambda echoes the payload), "input"}.
The report: {"status", "error", "cause", "output", "states" (entered, in order, parent
execution only), "map_runs" (item counts of each distributed map run), "dead_letters" (message
bodies in the queue)}.

moto runs Lambda tasks without code ("lambda": {"use_docker": false}): each invocation returns
the next queued result (/moto-api/static/lambda-simple/response), else its payload.
"""

import json
import os
import sys
import time
import urllib.request

import boto3

ENDPOINT = os.environ["SLUICE_MOTO_ENDPOINT"].rstrip("/")
CLIENT = dict(
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)


def moto_api(path, body):
    request = urllib.request.Request(
        ENDPOINT + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        response.read()


def setup():
    suffix = "%x-%x" % (time.time_ns(), os.getpid())
    bucket = "lake-" + suffix
    boto3.client("s3", **CLIENT).create_bucket(Bucket=bucket)
    queue = boto3.client("sqs", **CLIENT).create_queue(QueueName="jobs-dlq-" + suffix)
    # Lambda without Docker: queued results or an echo (keeps Step Functions execution on).
    moto_api("/moto-api/config", {"lambda": {"use_docker": False}})
    print(json.dumps({"bucket": bucket, "queue_url": queue["QueueUrl"]}))


def run(request):
    s3 = boto3.client("s3", **CLIENT)
    sqs = boto3.client("sqs", **CLIENT)
    sfn = boto3.client("stepfunctions", **CLIENT)
    s3.put_object(Bucket=request["bucket"], Key=request["plan_key"], Body=json.dumps(request["items"]))
    results = [json.dumps(r) for r in request["lambda_results"]]
    if results:
        moto_api("/moto-api/static/lambda-simple/response", {"results": results, "region": "us-east-1"})
    machine = sfn.create_state_machine(
        name=request["name"],
        definition=request["definition"],
        roleArn="arn:aws:iam::123456789012:role/sluice-jobs-state-machine",
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=machine, name="run-1", input=json.dumps(request["input"])
    )["executionArn"]
    deadline = time.time() + 60
    while True:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING" or time.time() > deadline:
            break
        time.sleep(0.1)
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    states = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    map_runs = []
    for run in sfn.list_map_runs(executionArn=execution)["mapRuns"]:
        counts = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
        map_runs.append(
            {
                "status": counts["status"],
                "max_concurrency": counts["maxConcurrency"],
                "tolerated_failure_percentage": counts["toleratedFailurePercentage"],
                "items": counts["itemCounts"],
            }
        )
    letters = []
    while True:
        messages = sqs.receive_message(QueueUrl=request["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        for m in messages:
            letters.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=request["queue_url"], ReceiptHandle=m["ReceiptHandle"])
    output = described.get("output")
    print(
        json.dumps(
            {
                "status": described["status"],
                "error": described.get("error"),
                "cause": described.get("cause"),
                "output": json.loads(output) if output else None,
                "states": states,
                "map_runs": map_runs,
                "dead_letters": letters,
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["setup"]:
        setup()
    elif sys.argv[1:] == ["run"]:
        run(json.load(sys.stdin))
    else:
        sys.exit("usage: moto_stepfunctions.py setup | run < request.json")
