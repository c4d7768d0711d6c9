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

EMR Serverless (moto's backend; its job runs are born SUCCESS and StartJobRun ignores the
client token): job runs live SUBMITTED -> RUNNING after `--pending` -> SUCCESS after
`--running`, FAILED with stateDetails when their entryPointArguments hold
`--sluice-test-fail`, RUNNING forever with `--sluice-test-hang`; a StartJobRun repeating a
client token answers the job run that token started, as EMR Serverless does. Faults as
above, keyed by application id ("application_id"), and with "after": true the call takes
effect and only its answer is lost (a 500 instead).

  POST /_sluice/application {"name": ...}   creates a started SPARK application: {"id": ...}
  GET  /_sluice/jobruns?application_id=...  every job run with name, state, client token, arguments
  (/_sluice/calls also counts these calls per application: "StartJobRun <application id>")

Managed scaling and auto-termination (moto has neither): PutManagedScalingPolicy,
GetManagedScalingPolicy, RemoveManagedScalingPolicy, PutAutoTerminationPolicy and
GetAutoTerminationPolicy keep each cluster's policies, as do RunJobFlow's
ManagedScalingPolicy and AutoTerminationPolicy. A PutManagedScalingPolicy whose
ComputeLimits hold "MaximumCapacityUnits": 999 is answered and not kept (a policy that did
not take, for the read-back check).

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
    "PutManagedScalingPolicy": "ClusterId",
    "GetManagedScalingPolicy": "ClusterId",
    "RemoveManagedScalingPolicy": "ClusterId",
    "PutAutoTerminationPolicy": "ClusterId",
    "GetAutoTerminationPolicy": "ClusterId",
}
POLICY_CALLS = {
    "PutManagedScalingPolicy": ("scaling", "ManagedScalingPolicy"),
    "PutAutoTerminationPolicy": ("termination", "AutoTerminationPolicy"),
}
JOB_RUN_ENDED = ("SUCCESS", "FAILED", "CANCELLED")


class Emulator:
    def __init__(self, pending, running):
        self.pending = pending
        self.running = running
        self.lock = threading.Lock()
        self.life = {}  # step id -> {"added": t, "started": t or None}
        self.faults = {}  # (operation, cluster or application id) -> [status, remaining, delay, after]
        self.calls = Counter()
        self.job_run_life = {}  # job run id -> {"added": t, "started": t or None}
        self.tokens = {}  # (application id, client token) -> job run id
        self.policies = {}  # (cluster id, "scaling" | "termination") -> the policy

    def fault_delay(self, key):
        """Seconds to hold the call back (a fault of status 0), using up one; else 0."""
        with self.lock:
            fault = self.faults.get(key)
            if fault and fault[0] == 0 and fault[1] > 0:
                fault[1] -= 1
                return fault[2]
        return 0.0

    def take_fault(self, key):
        """The injected failure for this call, using up one: (status, answer lost) or None.
        Call with the lock held."""
        fault = self.faults.get(key)
        if fault and fault[0] != 0 and fault[1] > 0:
            fault[1] -= 1
            return fault[0], fault[3]
        return None

    def serverless(self):
        from moto.emrserverless.models import emrserverless_backends

        return emrserverless_backends[ACCOUNT][REGION]

    def advance_job_runs(self):
        """Moves every EMR Serverless job run along its life."""
        now = time.monotonic()
        for runs in self.serverless().job_runs.values():
            for run in runs:
                life = self.job_run_life.get(run.id)
                if life is None:
                    # Just started (moto made it SUCCESS already): its life begins now.
                    life = self.job_run_life[run.id] = {"added": now, "started": None}
                    run.state = "SUBMITTED"
                if run.state in JOB_RUN_ENDED:
                    continue
                args = ((run.job_driver or {}).get("sparkSubmit") or {}).get("entryPointArguments") or []
                if life["started"] is None and now - life["added"] >= self.pending:
                    life["started"] = life["added"] + self.pending
                    run.state = "RUNNING"
                if run.state == "RUNNING" and HANG_MARKER not in args and now - life["started"] >= self.running:
                    if FAIL_MARKER in args:
                        run.state = "FAILED"
                        run.state_details = (
                            "Job failed, please check complete logs in configured logging destination. "
                            "ExitCode: 1. Last few exceptions: java.lang.RuntimeException: injected failure"
                        )
                    else:
                        run.state = "SUCCESS"

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


def injected_error(status, server_error):
    """The answer of an injected fault: throttling for 400, else the service's 5xx."""
    if status == 400:
        return error(400, "ThrottlingException", "Rate exceeded")
    return error(500, server_error, "injected server error")


def make_app(emulator):
    moto_app = DomainDispatcherApplication(create_backend_app)

    def moto_answer(request):
        """moto's (status, body) for the request, its body read again from the cache."""
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = status

        environ = dict(request.environ)
        raw = request.get_data(cache=True)
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        body = b"".join(moto_app(environ, capture))
        return int(captured["status"].split()[0]), body

    def control(request):
        path = request.path
        if path == "/_sluice/faults" and request.method == "POST":
            body = request.get_json(force=True)
            with emulator.lock:
                key = (body["operation"], body.get("cluster_id", ""))
                key = (body["operation"], body.get("cluster_id", body.get("application_id", "")))
                emulator.faults[key] = [
                    int(body.get("status", 500)),
                    int(body.get("count", 1)),
                    float(body.get("delay", 0)),
                    bool(body.get("after", False)),
                ]
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
        if path == "/_sluice/application" and request.method == "POST":
            body = request.get_json(force=True)
            with emulator.lock:
                application = emulator.serverless().create_application(
                    name=body.get("name", "sluice-test"),
                    release_label="emr-7.5.0",
                    application_type="SPARK",
                    client_token=body.get("name", "sluice-test"),
                    initial_capacity=None,
                    maximum_capacity=None,
                    tags={},
                    auto_start_configuration=None,
                    auto_stop_configuration=None,
                    network_configuration=None,
                )
            return Response(json.dumps({"id": application.id}), content_type="application/json")
        if path == "/_sluice/jobruns":
            with emulator.lock:
                emulator.advance_job_runs()
                runs = emulator.serverless().job_runs.get(request.args.get("application_id", ""), [])
                tokens = {run_id: token for (_, token), run_id in emulator.tokens.items()}
                listed = [
                    {
                        "id": r.id,
                        "name": r.name,
                        "state": r.state,
                        "client_token": tokens.get(r.id),
                        "args": ((r.job_driver or {}).get("sparkSubmit") or {}).get("entryPointArguments") or [],
                        "parameters": ((r.job_driver or {}).get("sparkSubmit") or {}).get("sparkSubmitParameters"),
                        "timeout_minutes": r.execution_timeout_minutes,
                    }
                    for r in runs
                ]
            return Response(json.dumps(listed), content_type="application/json")
        if path == "/_sluice/calls":
            with emulator.lock:
                return Response(json.dumps(emulator.calls), content_type="application/json")
        return error(404, "NotFound", path)

    def app(environ, start_response):
        request = Request(environ)
        if request.path.startswith("/_sluice/"):
            return control(request)(environ, start_response)
        if request.path.startswith("/applications"):
            return serverless(request, environ, start_response)
        target = request.headers.get("X-Amz-Target", "")
        operation = target.split(".")[-1]
        body = request.get_data(cache=True)
        # moto reads the body again from the WSGI input.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        params = json.loads(body or b"{}") if operation else {}
        key = (operation, params.get(STEP_CALLS.get(operation, "ClusterId"), ""))
        time.sleep(emulator.fault_delay(key))
        with emulator.lock:
            emulator.calls[operation] += 1
            injected = emulator.take_fault(key)
            if injected:
                return injected_error(injected[0], "InternalServerError")(environ, start_response)
            emulator.advance()
            if operation in STEP_CALLS:
                cluster_id = params.get(STEP_CALLS[operation], "")
                if cluster_id not in emulator.clusters():
                    return error(400, "InvalidRequestException", f"Cluster id '{cluster_id}' is not valid.")(environ, start_response)
            if operation in POLICY_CALLS:
                kind, field = POLICY_CALLS[operation]
                limits = (params.get(field) or {}).get("ComputeLimits") or {}
                if limits.get("MaximumCapacityUnits") != 999:
                    emulator.policies[(params["ClusterId"], kind)] = params.get(field)
                return Response("{}", content_type="application/x-amz-json-1.1")(environ, start_response)
            if operation == "GetManagedScalingPolicy":
                policy = emulator.policies.get((params["ClusterId"], "scaling"))
                answer = {"ManagedScalingPolicy": policy} if policy else {}
                return Response(json.dumps(answer), content_type="application/x-amz-json-1.1")(environ, start_response)
            if operation == "RemoveManagedScalingPolicy":
                emulator.policies.pop((params["ClusterId"], "scaling"), None)
                return Response("{}", content_type="application/x-amz-json-1.1")(environ, start_response)
            if operation == "GetAutoTerminationPolicy":
                policy = emulator.policies.get((params["ClusterId"], "termination"))
                answer = {"AutoTerminationPolicy": policy} if policy else {}
                return Response(json.dumps(answer), content_type="application/x-amz-json-1.1")(environ, start_response)
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
        if operation == "RunJobFlow":
            return run_job_flow(request, params)(environ, start_response)
        return moto_app(environ, start_response)

    def run_job_flow(request, params):
        # moto's answer; the cluster's policies kept for Get*Policy, as EMR keeps them.
        status, body = moto_answer(request)
        if status == 200:
            cluster_id = json.loads(body).get("JobFlowId")
            with emulator.lock:
                for kind, field in (("scaling", "ManagedScalingPolicy"), ("termination", "AutoTerminationPolicy")):
                    if params.get(field) is not None:
                        emulator.policies[(cluster_id, kind)] = params[field]
        return Response(body, status=status, content_type="application/x-amz-json-1.1")

    def serverless(request, environ, start_response):
        """EMR Serverless (REST): job runs that live, client tokens that are kept, faults."""
        parts = [p for p in request.path.split("/") if p]
        application = parts[1] if len(parts) > 1 else ""
        method = request.method
        if len(parts) == 3 and parts[2] == "jobruns":
            operation = "StartJobRun" if method == "POST" else "ListJobRuns"
        elif len(parts) == 4 and parts[2] == "jobruns":
            operation = "CancelJobRun" if method == "DELETE" else "GetJobRun"
        else:
            operation = {"POST": "CreateApplication", "DELETE": "DeleteApplication"}.get(method, "GetApplication")
        body = request.get_data(cache=True)
        params = json.loads(body or b"{}") if method == "POST" else {}
        time.sleep(emulator.fault_delay((operation, application)))
        with emulator.lock:
            emulator.calls[operation] += 1
            emulator.calls[f"{operation} {application}"] += 1
            injected = emulator.take_fault((operation, application))
            if injected and not injected[1]:
                return injected_error(injected[0], "InternalServerException")(environ, start_response)
            lose_answer = bool(injected)
            emulator.advance_job_runs()
            token = params.get("clientToken") if operation == "StartJobRun" else None
            known = emulator.tokens.get((application, token)) if token else None
            if known is not None:
                answer = Response(
                    json.dumps({"applicationId": application, "jobRunId": known,
                                "arn": f"arn:aws:emr-serverless:{REGION}:{ACCOUNT}:/applications/{application}/jobruns/{known}"}),
                    content_type="application/json",
                )
            else:
                status, raw = moto_answer(request)
                if operation == "StartJobRun" and status == 200 and token:
                    emulator.tokens[(application, token)] = json.loads(raw)["jobRunId"]
                emulator.advance_job_runs()
                answer = Response(raw, status=status, content_type="application/json")
        if lose_answer:
            return error(500, "InternalServerException", "injected: the answer was lost")(environ, start_response)
        return answer(environ, start_response)

    def describe_step(request, params):
        # moto's answer, with FailureDetails added for failed steps.
        status, body = moto_answer(request)
        with emulator.lock:
            step = emulator.find_step(params["ClusterId"], params["StepId"])
            failure = getattr(step, "failure", None) if step is not None else None
        if failure and status == 200:
            document = json.loads(body)
            document["Step"]["Status"]["FailureDetails"] = failure
            body = json.dumps(document).encode()
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
