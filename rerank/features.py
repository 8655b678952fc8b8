"""How a user's history reads as text for the cross-encoder: their most recent items with their
event types, newest first ("bought: Toy Story | 1995; viewed: Heat | 1995"); the tokenizer cuts it
to the context budget. (The retrieval features it reads come from the engine:
:func:`recsys.fusion.candidate_features`.)
"""

from __future__ import annotations

from collections.abc import Sequence

VERB = {"view": "viewed", "click": "clicked", "cart": "carted", "purchase": "bought", "rating": "rated"}


def context_text(titles: Sequence[str], events: Sequence[str], max_items: int = 10) -> str:
    """The newest ``max_items`` of a user's (title, event) history, given oldest first.

    A run of events on one item (viewed, then carted, then bought) says it once, with the newest.

    >>> context_text(["Heat", "Toy Story", "Toy Story", "Heat"], ["view", "cart", "purchase", "rating"])
    'rated: Heat; bought: Toy Story; viewed: Heat'
    """
    parts: list[str] = []
    previous = None
    for t, e in zip(reversed(list(titles)), reversed(list(events))):
        if t and t != previous:
            parts.append(f"{VERB.get(e, e)}: {t}")
        previous = t
        if len(parts) == max_items:
            break
    return "; ".join(parts)
