"""The answer the route sends is the typed AdmissionReviewResponse, byte for byte.

``/mutate`` serialises its answer from the verdict's fields
(:func:`graceful.webhook.review.render_answer`) rather than through the pydantic
models the answer is documented with; these tests hold the two to the same bytes,
and the bytes to the models.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from graceful.webhook.admit import Verdict
from graceful.webhook.review import (
    AdmissionResponse,
    AdmissionReviewResponse,
    render,
    render_answer,
)

text = st.text(max_size=40)


@given(uid=text, patch=st.none() | text, warnings=st.lists(text, max_size=4).map(tuple))
def test_the_answer_is_the_models_answer(uid: str, patch: str | None,
                                         warnings: tuple[str, ...]) -> None:
    verdict = Verdict(uid, "mutated" if patch else "unchanged", patch, warnings)
    answer = render_answer(verdict.uid, verdict.patch, verdict.warnings)
    assert answer == render(verdict.response)
    assert answer == AdmissionReviewResponse(response=verdict.response).model_dump_json(
        by_alias=True, exclude_none=True).encode()
    parsed = AdmissionReviewResponse.model_validate_json(answer)
    assert parsed.response == AdmissionResponse(
        uid=uid, patch=patch, patch_type="JSONPatch" if patch is not None else None,
        warnings=list(warnings) or None)
