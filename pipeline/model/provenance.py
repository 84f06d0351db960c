"""What answered an evaluation: the endpoint, its models, and whether they are the embedded stand-ins.

The embedded provider (`pipeline.provider`) serves small lexical models (TF-IDF similarity, logistic
regression) so that the chain runs with no account. They always answer a label, answer the same at any
temperature and ignore the order of few-shot examples, so format validity, stability and order
sensitivity are constants for them, not measurements: `describe` marks those figures not applicable.
A base model is a stand-in when the endpoint lists it as owned by the embedded provider; a fine-tuned
candidate is a stand-in when its base model is.
"""
from __future__ import annotations

from typing import Sequence

EMBEDDED_OWNER = "tunegate-local"  # `owned_by` of the embedded provider's base models
STAND_IN_NOTE = ("the embedded provider's lexical stand-ins (TF-IDF similarity and logistic regression), "
                 "not language models: their accuracy shows what the pipeline's data supports, not what a "
                 "chat model would score")
NOT_APPLICABLE = {
    "format_validity": "a stand-in always answers a label from the prompt",
    "stability": "a stand-in gives the same answer at every temperature",
    "order_sensitivity": "a stand-in weighs every few-shot example alike, in any order",
}


def describe(client, endpoint: str, candidates: Sequence, simulation: Sequence[str] = ()) -> dict:
    """JSON-safe facts about the endpoint and each candidate's model.

    `simulation` names the behaviours the embedded provider's test switch injects (empty in normal use);
    with it on, the figures of the stand-ins are simulated and the note says so."""
    owners: dict[str, str] = {}
    try:
        for m in client.models.list():
            owners[m.id] = getattr(m, "owned_by", "") or ""
    except Exception:  # noqa: BLE001 - facts only: an endpoint without /models is described as unknown
        owners = {}
    embedded = endpoint.startswith("embedded:")
    models = {}
    for c in candidates:
        base_is_stand_in = owners.get(c.base_model) == EMBEDDED_OWNER
        models[c.name] = {"model": c.model, "base_model": c.base_model,
                          "owned_by": owners.get(c.model), "stand_in": bool(base_is_stand_in)}
    stand_ins = [n for n, m in models.items() if m["stand_in"]]
    note = ""
    if stand_ins:
        note = (f"{len(stand_ins)} of {len(models)} candidates run on {STAND_IN_NOTE}. Format validity, "
                "stability and order sensitivity are not applicable to them.")
        if simulation:
            note += (f" The provider's test switch was on ({', '.join(simulation)}): those behaviours were "
                     "injected, so any figure about them is simulated.")
    return {"endpoint": "embedded provider (loopback)" if embedded else endpoint, "embedded": embedded,
            "models": models, "stand_in_candidates": stand_ins, "simulation": list(simulation), "note": note}


def not_applicable_for(candidate_name: str, facts: dict | None) -> dict[str, str]:
    """Figure -> reason it is not applicable to this candidate (empty for a real model, or under the
    provider's test switch, where the injected behaviour is exactly what the figures measure)."""
    if not facts or facts.get("simulation"):
        return {}
    m = facts["models"].get(candidate_name) or {}
    return dict(NOT_APPLICABLE) if m.get("stand_in") else {}


def describe_with_switch(client, endpoint: str, candidates: Sequence) -> dict:
    """`describe`, with the embedded provider's test switch as set in this process's environment."""
    from pipeline.provider.models import current_simulation

    return describe(client, endpoint, candidates, current_simulation().names())
