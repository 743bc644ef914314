"""The admission.k8s.io/v1 AdmissionReview, typed, and a parser that never crashes.

Why parse by hand instead of letting FastAPI validate the body: FastAPI answers
a body it cannot validate with 422 and a generic list of errors, and a body it
cannot decode can surface as a 500. The API server (and a human with curl)
deserves a 400 that says what is wrong, and this webhook must never answer
with a 500, because an admission webhook that errors can stop every deploy of
a cluster whose configuration says ``failurePolicy: Fail``. So the route reads
the body itself, with a bound, and hands the bytes to :func:`parse_review`,
whose only failure is :class:`BadReview` with a one-line message.

The models keep only the fields the webhook reads and ignore the others, so a
newer API server that adds fields is still understood.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import from_json, to_json

#: The only version of the review the webhook is registered for.
API_VERSION: Final = "admission.k8s.io/v1"
KIND: Final = "AdmissionReview"

#: Largest request body read. The API server's own limit for an object is
#: 1.5 MiB (etcd's request size); a review carries the object and, on UPDATE,
#: the old object, so twice that plus the envelope.
MAX_BODY_BYTES: Final = 3 * 1024 * 1024

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]

_IN = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)
_OUT = ConfigDict(populate_by_name=True, extra="forbid")


class BadReview(ValueError):
    """A request body that is not a usable AdmissionReview; the message says why."""


class GroupVersionKind(BaseModel):
    """``request.kind``: the kind of the object, after the API server's conversion."""

    model_config = _IN

    group: str
    """``""`` for the core group (Pods), ``apps`` for workloads."""
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` an object of this kind carries."""
        return f"{self.group}/{self.version}" if self.group else self.version


class GroupVersionResource(BaseModel):
    """``request.resource``: the resource the request was made against."""

    model_config = _IN

    group: str
    version: str
    resource: str


class AdmissionRequest(BaseModel):
    """``request`` of an AdmissionReview: what the API server asks about."""

    model_config = _IN

    uid: Annotated[str, Field(min_length=1, max_length=256)]
    """Echoed in the response; the API server matches the two by it."""
    kind: GroupVersionKind
    resource: GroupVersionResource | None = None
    sub_resource: str | None = Field(default=None, alias="subResource")
    """Set for requests to ``status``, ``scale``, ``ephemeralcontainers``...: not ours."""
    name: str | None = None
    """Empty on CREATE with ``generateName``."""
    namespace: str | None = None
    operation: Operation
    object: dict[str, Any] | None = None
    """The object as it will be stored (CREATE, UPDATE)."""
    old_object: dict[str, Any] | None = Field(default=None, alias="oldObject")
    dry_run: bool = Field(default=False, alias="dryRun")
    """The request is not persisted; answered the same way (there are no side effects)."""

    @field_validator("dry_run", mode="before")
    @classmethod
    def _null_is_false(cls, value: Any) -> Any:
        return False if value is None else value


class AdmissionReview(BaseModel):
    """The review the API server POSTs to ``/mutate``."""

    model_config = _IN

    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class Status(BaseModel):
    """A metav1.Status, only used to explain a refusal (the webhook never refuses)."""

    model_config = _OUT

    code: int | None = None
    message: str | None = None


class AdmissionResponse(BaseModel):
    """``response`` of an AdmissionReview: the verdict and the patch."""

    model_config = _OUT

    uid: str
    """The ``request.uid`` answered."""
    allowed: bool = True
    """Always true: this webhook mutates, it never blocks a deploy."""
    patch: str | None = None
    """Base64 of an RFC 6902 JSON Patch; absent when nothing changes."""
    patch_type: Literal["JSONPatch"] | None = Field(default=None, alias="patchType")
    warnings: list[str] | None = None
    """Shown by ``kubectl``; each under 120 characters."""
    status: Status | None = None


class AdmissionReviewResponse(BaseModel):
    """The review the webhook answers with."""

    model_config = _OUT

    api_version: Literal["admission.k8s.io/v1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["AdmissionReview"] = KIND
    response: AdmissionResponse


#: What every answer starts with; only ``response`` differs from one answer to the next.
_ANSWER_HEAD: Final = (f'{{"apiVersion":"{API_VERSION}","kind":"{KIND}","response":'
                       .encode())


def render(response: AdmissionResponse) -> bytes:
    """The :class:`AdmissionReviewResponse` carrying ``response``, as compact JSON.

    The same bytes as ``AdmissionReviewResponse(response=response).model_dump_json(
    by_alias=True, exclude_none=True)``, without building and validating the envelope
    model on every answer.
    """
    return _ANSWER_HEAD + response.model_dump_json(by_alias=True, exclude_none=True).encode() + b"}"


def render_answer(uid: str, patch: str | None, warnings: Sequence[str]) -> bytes:
    """The answer to ``uid``: allowed, with ``patch`` (base64) and ``warnings`` if any.

    The same bytes as :func:`render` of the :class:`AdmissionResponse` with these
    fields (``warnings`` omitted when empty), serialised by the same pydantic-core
    serializer from a dict: building and validating the model cost four times as
    much, for fields that the webhook's own code has just made.
    """
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch is not None:
        response["patch"] = patch
        response["patchType"] = "JSONPatch"
    if warnings:
        response["warnings"] = warnings
    return _ANSWER_HEAD + to_json(response) + b"}"


class Problem(BaseModel):
    """The body of a 400: what was wrong with the request."""

    detail: str


def _loads(body: bytes) -> Any:
    """The JSON value in ``body``; ValueError (with line and column) if it is not one.

    pydantic-core's parser, which pydantic documents as ``from_json``: 25-30%
    faster than the standard library's on reviews (bench/results.md), with
    object keys interned once per call, as a review repeats ``name``, ``value``
    and ``image`` in every container. Stricter in what an API server never
    sends: ``NaN`` and ``Infinity``, a byte-order mark, UTF-16, lone
    surrogates and nesting deeper than 200 are all refused.
    """
    return from_json(body, allow_inf_nan=False, cache_strings="keys")


def parse_review(body: bytes, *, limit: int = MAX_BODY_BYTES) -> AdmissionReview:
    """The review in ``body``, or :class:`BadReview` saying what is wrong with it.

    Checks, in order: the size, the JSON, the envelope (``apiVersion``,
    ``kind``, ``request``), the request's fields, and that the object is of
    the kind the request claims.
    """
    if len(body) > limit:
        raise BadReview(f"request body of {len(body)} bytes exceeds the limit of {limit} bytes")
    if not body.strip():
        raise BadReview("empty request body: expected an AdmissionReview")
    try:
        data = _loads(body)
    except ValueError as exc:  # the message gives the line and column
        raise BadReview(f"malformed JSON: {_first_line(str(exc))}") from None
    if not isinstance(data, dict):
        raise BadReview(f"not an AdmissionReview: the body is a JSON {_json_type(data)}")
    if data.get("kind") != KIND:
        raise BadReview(f"not an AdmissionReview: kind is {_shown(data.get('kind'))}")
    if data.get("apiVersion") != API_VERSION:
        raise BadReview(f"unsupported apiVersion {_shown(data.get('apiVersion'))}:"
                        f" expected {API_VERSION}")
    if data.get("request") is None:
        raise BadReview("request: missing (a response-only AdmissionReview?)")
    try:
        review = AdmissionReview.model_validate(data)
    except ValidationError as exc:
        raise BadReview(_describe(exc)) from None
    _check_object(review.request)
    return review


def _check_object(request: AdmissionRequest) -> None:
    """The object must be present for CREATE and UPDATE and be the kind claimed."""
    if request.operation not in ("CREATE", "UPDATE"):
        return
    if request.object is None:
        raise BadReview(f"request.object: required for {request.operation}")
    claimed = request.kind
    kind = request.object.get("kind")
    if kind is not None and kind != claimed.kind:
        raise BadReview(f"request.object: kind {_shown(kind)} does not match"
                        f" request.kind {_shown(claimed.kind)}")
    api_version = request.object.get("apiVersion")
    if api_version is not None and api_version != claimed.api_version:
        raise BadReview(f"request.object: apiVersion {_shown(api_version)} does not match"
                        f" request.kind {_shown(claimed.api_version)}")


def _describe(exc: ValidationError) -> str:
    """The first validation errors as ``request.field: message``."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _shown(value: Any, limit: int = 60) -> str:
    """A value from the request, quoted and clipped, for an error message."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else "cannot decode"
