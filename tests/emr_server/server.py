"""An EMR API for tests: moto's EMR backend, made to behave like EMR where Sluice needs it.

moto (5.2) answers the EMR API but its steps never advance, CancelSteps is not implemented
and unknown ids give 500s. This WSGI wrapper keeps moto's backend for clusters and steps and
adds, for every step, a life: PENDING -> RUNNING after `--pending` seconds -> COMPLETED after
`--running` seconds; a step whose arguments contain `--sluice-test-fail` ends FAILED with
FailureDetails, one with `--sluice-test-hang` stays RUNNING. It implements CancelSteps,
answers 400 (InvalidRequestException) for unknown cluster and step ids, and has a control
API for tests under /_sluice/:

  POST /_sluice/faults  {"operation": "DescribeStep", "cluster_id": ..., "status": 500 | 400 | 0, "count": N, "delay": S}
       the next N calls of the operation on that cluster fail (500 InternalServerError, or
       400 ThrottlingException), or with status 0 are answered normally after S seconds
  POST /_sluice/step    {"cluster_id": ..., "step_id": ..., "state": "FAILED" | ..., "failure": {...}}
       sets a step's state (any text, even one EMR does not have) and its FailureDetails
  GET  /_sluice/steps?cluster_id=...   every step with name, state and arguments
  GET  /_sluice/calls   how many calls of each operation were made

Requests must be signed (the SDK signs; hand-written calls need an
`Authorization: AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/elasticmapreduce/aws4_request`
header) for moto to route them.

Run: python server.py --port 5055 [--pending 0.5] [--running 2]
"""

import argparse
import io
import json
import threading
import time
from collections import Counter

from moto.emr.models import emr_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

ACCOUNT = "123456789012"
REGION = "us-east-1"
FAIL_MARKER = "--sluice-test-fail"
HANG_MARKER = "--sluice-test-hang"
STEP_CALLS = {
    "AddJobFlowSteps": "JobFlowId",
    "DescribeStep": "ClusterId",
    "ListSteps": "ClusterId",
    "CancelSteps": "ClusterId",
    "DescribeCluster": "ClusterId",
}


class Emulator:
    def __init__(self, pending, running):
        self.pending = pending
        self.running = running
        self.lock = threading.Lock()
        self.life = {}  # step id -> {"added": t, "started": t or None}
        self.faults = {}  # (operation, cluster id) -> [status, remaining]
        self.calls = Counter()

    def backend(self):
        return emr_backends[ACCOUNT][REGION]

    def clusters(self):
        return self.backend().clusters

    def advance(self):
        """Moves every step along its life, as time has passed."""
        now = time.monotonic()
        for cluster in self.clusters().values():
            for step in cluster.steps:
                life = self.life.setdefault(step.id, {"added": now, "started": None})
                if step.state in ("COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"):
                    continue
                if life["started"] is None:
                    step.state = "PENDING"
                    if now - life["added"] >= self.pending:
                        # Lives follow the clock, not the polling: a step polled late has
                        # moved on as far as it would have.
                        life["started"] = life["added"] + self.pending
                        step.state = "RUNNING"
                if step.state == "RUNNING" and HANG_MARKER not in step.args:
                    if now - life["started"] >= self.running:
                        if FAIL_MARKER in step.args:
                            step.state = "FAILED"
                            step.failure = {
                                "Reason": "Spark application failed",
                                "Message": "Exception in thread main: java.lang.RuntimeException: injected failure",
                                "LogFile": f"s3://logs/{cluster.id}/steps/{step.id}/stderr.gz",
                            }
                        else:
                            step.state = "COMPLETED"

    def find_step(self, cluster_id, step_id):
        cluster = self.clusters().get(cluster_id)
        if cluster is None:
            return None
        return next((s for s in cluster.steps if s.id == step_id), None)


def error(status, kind, message):
    return Response(
        json.dumps({"__type": kind, "Message": message}),
        status=status,
        content_type="application/x-amz-json-1.1",
    )


def make_app(emulator):
    moto_app = DomainDispatcherApplication(create_backend_app)

    def control(request):
        path = request.path
        if path == "/_sluice/faults" and request.method == "POST":
            body = request.get_json(force=True)
            with emulator.lock:
                key = (body["operation"], body.get("cluster_id", ""))
                emulator.faults[key] = [int(body.get("status", 500)), int(body.get("count", 1)), float(body.get("delay", 0))]
            return Response("{}", content_type="application/json")
        if path == "/_sluice/step" and request.method == "POST":
            body = request.get_json(force=True)
            with emulator.lock:
                step = emulator.find_step(body["cluster_id"], body["step_id"])
                if step is None:
                    return error(404, "NotFound", "no such step")
                step.state = body["state"]
                if "failure" in body:
                    step.failure = body["failure"]
            return Response("{}", content_type="application/json")
        if path == "/_sluice/steps":
            with emulator.lock:
                emulator.advance()
                cluster = emulator.clusters().get(request.args.get("cluster_id", ""))
                steps = [] if cluster is None else [
                    {"id": s.id, "name": s.name, "state": s.state, "args": list(s.args)} for s in cluster.steps
                ]
            return Response(json.dumps(steps), content_type="application/json")
        if path == "/_sluice/calls":
            with emulator.lock:
                return Response(json.dumps(emulator.calls), content_type="application/json")
        return error(404, "NotFound", path)

    def app(environ, start_response):
        request = Request(environ)
        if request.path.startswith("/_sluice/"):
            return control(request)(environ, start_response)
        target = request.headers.get("X-Amz-Target", "")
        operation = target.split(".")[-1]
        body = request.get_data(cache=True)
        # moto reads the body again from the WSGI input.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        params = json.loads(body or b"{}") if operation else {}
        delay = 0.0
        with emulator.lock:
            fault = emulator.faults.get((operation, params.get(STEP_CALLS.get(operation, "ClusterId"), "")))
            if fault and fault[0] == 0 and fault[1] > 0:
                fault[1] -= 1
                delay = fault[2]
        if delay:
            time.sleep(delay)
        with emulator.lock:
            emulator.calls[operation] += 1
            if fault and fault[0] != 0 and fault[1] > 0:
                fault[1] -= 1
                if fault[0] == 400:
                    return error(400, "ThrottlingException", "Rate exceeded")(environ, start_response)
                return error(500, "InternalServerError", "injected server error")(environ, start_response)
            emulator.advance()
            if operation in STEP_CALLS:
                cluster_id = params.get(STEP_CALLS[operation], "")
                if cluster_id not in emulator.clusters():
                    return error(400, "InvalidRequestException", f"Cluster id '{cluster_id}' is not valid.")(environ, start_response)
            if operation == "DescribeStep" and emulator.find_step(params["ClusterId"], params.get("StepId")) is None:
                return error(400, "InvalidRequestException", f"Step id '{params.get('StepId')}' is not valid.")(environ, start_response)
            if operation == "CancelSteps":
                info = []
                for step_id in params.get("StepIds", []):
                    step = emulator.find_step(params["ClusterId"], step_id)
                    if step is not None and step.state in ("PENDING", "RUNNING"):
                        step.state = "CANCELLED"
                        info.append({"StepId": step_id, "Status": "SUBMITTED", "Reason": ""})
                    else:
                        info.append({"StepId": step_id, "Status": "FAILED", "Reason": "not pending or running"})
                return Response(json.dumps({"CancelStepsInfoList": info}), content_type="application/x-amz-json-1.1")(environ, start_response)
        if operation == "DescribeStep":
            return describe_step(request, params)(environ, start_response)
        return moto_app(environ, start_response)

    def describe_step(request, params):
        # moto's answer, with FailureDetails added for failed steps.
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        environ = dict(request.environ)
        raw = request.get_data(cache=True)
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        body = b"".join(moto_app(environ, capture))
        with emulator.lock:
            step = emulator.find_step(params["ClusterId"], params["StepId"])
            failure = getattr(step, "failure", None) if step is not None else None
        if failure and captured["status"].startswith("200"):
            document = json.loads(body)
            document["Step"]["Status"]["FailureDetails"] = failure
            body = json.dumps(document).encode()
        status = int(captured["status"].split()[0])
        return Response(body, status=status, content_type="application/x-amz-json-1.1")

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--pending", type=float, default=0.5, help="seconds a step stays PENDING")
    parser.add_argument("--running", type=float, default=2.0, help="seconds a step stays RUNNING")
    args = parser.parse_args()
    run_simple(args.host, args.port, make_app(Emulator(args.pending, args.running)), threaded=True)


if __name__ == "__main__":
    main()
