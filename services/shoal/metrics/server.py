"""MetricsService servicer: proto ⇄ domain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from shoal.kit import auth
from shoal.kit.bootstrap import Runtime
from shoal.kit.errors import Aborted
from shoal.kit.names import parse_inference_set
from shoal.kit.operations import OperationStore, Progress, error_of, operations_service
from shoal.kit.server import Service
from shoal.metrics.evaluations import Evaluations, Plan
from shoal.metrics.keypoint_checks import CheckPlan, KeypointChecks, summary
from shoal.v1 import evaluation_pb2, metrics_service_pb2, metrics_service_pb2_grpc, operation_pb2

log = logging.getLogger("shoal.metrics.server")
Ctx = Any


class MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Evaluations of inference sets and label-error candidates."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.evaluations = Evaluations(runtime.store, runtime.settings.store)
        self.keypoint_checks = KeypointChecks(runtime.store, runtime.settings.store)
        self.operations = OperationStore(runtime.redis)
        self.running: set[asyncio.Task[None]] = set()

    async def CreateEvaluation(
        self, request: metrics_service_pb2.CreateEvaluationRequest, context: Ctx
    ) -> operation_pb2.Operation:
        name = parse_inference_set(request.parent, "parent")
        project = str(name.dataset_name.parent)
        auth.require(project, "WRITER")
        plan = await asyncio.to_thread(self.evaluations.plan, request.parent, request.dataset_version, request.params)
        cached = await asyncio.to_thread(self.evaluations.cached, plan)
        if cached is not None:
            op, _ = await self.operations.create(
                operation_pb2.OperationProgress(stage="cached"), project=project, dataset=str(name)
            )
            return await self.operations.finish(op.name, cached)
        op, created = await self.operations.create(
            operation_pb2.OperationProgress(stage="queued"),
            key=plan.evaluation_id,
            project=project,
            dataset=str(name),
        )
        if created:
            task = asyncio.create_task(
                self.operations.run(op, lambda progress: self._work(plan, progress), key=plan.evaluation_id)
            )
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        return op

    async def _work(self, plan: Plan, progress: Progress) -> evaluation_pb2.Evaluation:
        await asyncio.to_thread(self.evaluations.start, plan)
        try:
            await progress.check()
            return await asyncio.to_thread(self.evaluations.compute, plan, progress)
        except BaseException:
            await asyncio.to_thread(self.evaluations.failed, plan)
            raise

    async def GetEvaluation(
        self, request: metrics_service_pb2.GetEvaluationRequest, context: Ctx
    ) -> evaluation_pb2.Evaluation:
        auth.require(_project(request.name))
        return await asyncio.to_thread(self.evaluations.get, request.name)

    async def ListEvaluations(
        self, request: metrics_service_pb2.ListEvaluationsRequest, context: Ctx
    ) -> metrics_service_pb2.ListEvaluationsResponse:
        name = parse_inference_set(request.parent, "parent")
        auth.require(str(name.dataset_name.parent))
        items, token = await asyncio.to_thread(
            self.evaluations.list_evaluations, request.parent, request.page_size, request.page_token
        )
        return metrics_service_pb2.ListEvaluationsResponse(evaluations=items, next_page_token=token)

    async def ListFrameMatches(
        self, request: metrics_service_pb2.ListFrameMatchesRequest, context: Ctx
    ) -> metrics_service_pb2.ListFrameMatchesResponse:
        auth.require(_project(request.parent))
        return await asyncio.to_thread(
            self.evaluations.frame_matches,
            request.parent,
            request.kind,
            request.page_size,
            request.page_token,
            request.cell if request.HasField("cell") else None,
        )

    async def ListLabelErrorCandidates(
        self, request: metrics_service_pb2.ListLabelErrorCandidatesRequest, context: Ctx
    ) -> metrics_service_pb2.ListLabelErrorCandidatesResponse:
        auth.require(_project(request.parent))
        return await asyncio.to_thread(
            self.evaluations.candidates, request.parent, list(request.reasons), request.page_size, request.page_token
        )

    async def CheckKeypoints(
        self, request: metrics_service_pb2.CheckKeypointsRequest, context: Ctx
    ) -> metrics_service_pb2.CheckKeypointsResponse:
        auth.require(_project(request.dataset_version))
        plan = await asyncio.to_thread(
            self.keypoint_checks.plan, request.dataset_version, request.classes, request.rules
        )
        result = await asyncio.to_thread(self.keypoint_checks.stored, plan)
        if result is None:
            # Wait on the operation, not the work: when this call's deadline cancels the wait, the check goes on.
            op = await self.operations.wait((await self._start_check(plan)).name)
            if op.HasField("error"):
                raise error_of(op)
            result = await asyncio.to_thread(self.keypoint_checks.stored, plan)
            if result is None:
                raise Aborted("the check finished but its result is gone; ask again", reason="CHECK_RESULT_MISSING")
        return self.keypoint_checks.page(result, request.page_size, request.page_token)

    async def StartKeypointCheck(
        self, request: metrics_service_pb2.StartKeypointCheckRequest, context: Ctx
    ) -> operation_pb2.Operation:
        auth.require(_project(request.dataset_version), "WRITER")
        plan = await asyncio.to_thread(
            self.keypoint_checks.plan, request.dataset_version, request.classes, request.rules
        )
        return await self._start_check(plan)

    async def _start_check(self, plan: CheckPlan) -> operation_pb2.Operation:
        """The check's operation: done at once when stored, else the running one for the same check, else a new
        one run in this process."""
        project, dataset = str(plan.dataset.parent), str(plan.dataset)
        result = await asyncio.to_thread(self.keypoint_checks.stored, plan)
        if result is not None:
            op, _ = await self.operations.create(
                operation_pb2.OperationProgress(stage="stored"), project=project, dataset=dataset
            )
            return await self.operations.finish(op.name, summary(result))
        key = f"keypoint-check:{plan.digest}"
        op, created = await self.operations.create(
            operation_pb2.OperationProgress(stage="queued"), key=key, project=project, dataset=dataset
        )
        if created:
            task = asyncio.create_task(
                self.operations.run(
                    op, lambda progress: asyncio.to_thread(self.keypoint_checks.run, plan, progress), key=key
                )
            )
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        return op


def _project(name: str) -> str:
    """The project an evaluation name belongs to (the name's shape is checked by the domain)."""
    parts = name.split("/")
    return "/".join(parts[:2]) if len(parts) >= 2 and parts[0] == "projects" else name


def build(runtime: Runtime) -> Sequence[Service]:
    return [
        Service(
            MetricsServicer(runtime),
            metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server,
            "shoal.v1.MetricsService",
        ),
        operations_service(runtime.redis),
    ]
