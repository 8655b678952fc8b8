"""The candidate sources the engine fuses, in order: the registry.

Fusion's weight grid, the reranker's per-source features, the funnel's rows and the command
line's help are all read from :data:`SOURCES`. Adding a source is one new module with a
:class:`~recsys.sources.CandidateSource` subclass, plus one line here (see the README's
"Extending" section).
"""

from __future__ import annotations

from recsys.errors import ConfigError
from recsys.sources import CandidateSource

from .als import ALSSource
from .popular import PopularSource
from .reengage import ReengageSource
from .reorder import ReorderSource
from .repeat import RepeatSource
from .similar import SimilarSource
from .transitions import TransitionsSource
from .two_tower import TwoTowerSource

SOURCES: list[type[CandidateSource]] = [
    TwoTowerSource,
    ALSSource,
    SimilarSource,
    RepeatSource,
    ReorderSource,
    ReengageSource,
    TransitionsSource,
    PopularSource,
]


def names() -> tuple[str, ...]:
    """The registered sources' names, in fusion order."""
    return tuple(s.name for s in SOURCES)


def get(name: str) -> type[CandidateSource]:
    for s in SOURCES:
        if s.name == name:
            return s
    raise ConfigError(f"candidate source {name!r}: unknown; the sources are {', '.join(names())}")


def register(source: type[CandidateSource]) -> type[CandidateSource]:
    """Add a source class at the end of the registry (usable as a decorator); its name must be new."""
    if not source.name or source.name in names():
        raise ConfigError(f"candidate source {source.name!r}: give it a name that is not one of {', '.join(names())}")
    SOURCES.append(source)
    return source
