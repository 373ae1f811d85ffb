"""The sandbox's world: the API clients and business customers it knows, read from a JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

VerificationStatus = Literal["INITIATED", "REVIEWING", "APPROVED", "REJECTED"]


class Client(BaseModel):
    """Credentials accepted by `POST /v1/oauth/token`."""

    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: str


class Party(BaseModel):
    """An associated party (an individual) of a business customer."""

    model_config = ConfigDict(extra="forbid")

    id: str
    email: str | None = None
    type: str = "INDIVIDUAL"
    ownership_percent: float | None = None
    verification_status: VerificationStatus = "INITIATED"


class Customer(BaseModel):
    """A business customer and its associated parties."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    type: str = "BUSINESS"
    customer_status: str = "INCOMPLETE"
    associated_parties: list[Party] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_party_ids(self) -> Customer:
        ids = [p.id for p in self.associated_parties]
        if len(ids) != len(set(ids)):
            raise ValueError(f"customer {self.customer_id}: duplicate associated party id")
        return self


class World(BaseModel):
    """Everything the sandbox starts from; tests and the demo write their own world file.

    Example::

        {"clients": [{"client_id": "demo", "client_secret": "demo-secret"}],
         "customers": [{"customer_id": "<uuid>", "type": "BUSINESS",
                        "associated_parties": [{"id": "<uuid>", "email": "a@example.com",
                                                "ownership_percent": 50}]}]}
    """

    model_config = ConfigDict(extra="forbid")

    clients: list[Client] = Field(default_factory=list)
    customers: list[Customer] = Field(default_factory=list)
    # Fin may apply attaches asynchronously (docs/api-contract.md, section 6): how long after an attach lands a party
    # leaves INITIATED. 0: at once; a number: that many seconds later; null: never.
    status_moves_after_s: float | None = Field(0.0, ge=0)
    # Some gateways give `verification.updated_at` to the whole second (truncated): a move within the second
    # of a send then reads as no later than the send.
    updated_at_whole_seconds: bool = False

    @model_validator(mode="after")
    def _unique_customer_ids(self) -> World:
        ids = [c.customer_id for c in self.customers]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate customer_id in world")
        return self

    @classmethod
    def load(cls, path: str | Path) -> World:
        """Read and validate a world JSON file."""
        return cls.model_validate_json(Path(path).read_bytes())
