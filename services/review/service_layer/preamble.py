"""What every reviewer use case starts with, and how the domain's refusals leave it.

Every use case takes the authenticated principal (a reviewer id the entrypoint got from the
caller's token) and checks the reviewer itself (:func:`identify`); nothing trusts what the client
says about who it is. The domain refuses with WorkflowErrors; :func:`use_case` turns them into the
platform's service errors (services/common/errors.py) the entrypoints map to status codes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from services.common.errors import (
    FailedPrecondition,
    FieldViolation,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ValidationFailed,
)
from services.review.domain import workflow as wf
from services.review.domain.task import Task
from services.review.service_layer.ports import UnitOfWork

P = ParamSpec("P")
R = TypeVar("R")


def use_case(method: Callable[P, R]) -> Callable[P, R]:
    """Decorate a use case so the domain's refusals leave as service errors:

    ============  ==================
    NotPermitted  PermissionDenied
    InvalidInput  ValidationFailed (the field it names)
    AtCapacity    ResourceExhausted
    Conflict      FailedPrecondition (StaleTask included: the task changed since it was read)
    ============  ==================
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except wf.NotPermitted as exc:
            raise PermissionDenied(str(exc)) from exc
        except wf.InvalidInput as exc:
            raise ValidationFailed([FieldViolation(exc.field, exc.problem)]) from exc
        except wf.AtCapacity as exc:
            raise ResourceExhausted(str(exc)) from exc
        except wf.Conflict as exc:
            raise FailedPrecondition(str(exc)) from exc

    return wrapper


def identify(uow: UnitOfWork, principal: str, may: wf.Action | None = None) -> wf.Reviewer:
    """The active reviewer ``principal`` is, who may do ``may`` when given (before any task is
    looked at: what a role may not do is refused whatever the task)."""
    reviewer = uow.reviewers.get(principal)
    if reviewer is None:
        raise PermissionDenied(f"{principal!r} is not in the reviewer directory")
    if not reviewer.active:
        raise PermissionDenied(f"reviewer {principal!r} is inactive")
    if may is not None:
        wf.check_may(reviewer, may)
    return reviewer


def load_task(uow: UnitOfWork, task_id: str) -> Task:
    task = uow.tasks.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id!r}")
    return task
