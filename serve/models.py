"""The request bodies of the HTTP API: strict types (a number is a JSON number, an id a JSON string),
bounded sizes, and times that a shop's events can have."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_EVENTS = 1000  # per POST /events or POST /recommend history
EARLIEST, LATEST = 0.0, 4_102_444_800.0  # epoch seconds: 1970-01-01 to 2100-01-01


class Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    user_id: str | None = Field(None, min_length=1, max_length=256, description="Required by POST /events.")
    item_id: str = Field(..., min_length=1, max_length=256)
    event: str = Field("purchase", min_length=1, max_length=64)
    timestamp: float | None = Field(None, ge=EARLIEST, le=LATEST, allow_inf_nan=False,
                                    description="Epoch seconds, 1970 to 2100; default: when received.")


class Events(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    events: list[Event] = Field(..., min_length=1, max_length=MAX_EVENTS)


class History(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    history: list[Event] = Field(..., min_length=1, max_length=MAX_EVENTS)
    k: int = Field(10, ge=1, le=1000)
