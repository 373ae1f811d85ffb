"""The sandbox Fin API as an ASGI app: routes, the order in which faults strike, and the run-time state.

Order for every API request: count it; draw its fate; rate limit (429); authenticate (401); then the
handler, which adds latency, drops or answers 5xx before doing any work, does the work, and for a
commit-then-fail fate answers 500 or drops after recording. A slow fate holds the answer back after the work; a
misshapen one answers a success with an HTML page or a padded body, or dribbles the answer byte by byte.
For attach the in-progress flag that yields 409 is held from before the latency until the answer is sent.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import string
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from sandbox.asgi import (
    ClientGone,
    DropConnection,
    Receive,
    Scope,
    Send,
    body_chunks,
    drain,
    drop_connection,
    header,
    json_response,
    read_body,
    streamed_response,
)
from sandbox.faults import Faults
from sandbox.injector import Fate, FaultInjector
from sandbox.record import Record, Upload
from sandbox.tokens import TokenStore
from sandbox.uploads import UploadRejected, parse_upload, safe_filename
from sandbox.validation import AttachRules, check_attach, refusals
from sandbox.world import Customer, World

MAX_JSON_BYTES = 5 * 1024 * 1024
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
_NOT_FOUND = {"message": "Resource not found"}
_AUTH_FAILED = {"message": "Authentication failed"}
_URI_ALPHABET = string.ascii_letters + string.digits
_GATEWAY_PAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                 b"<body><h1>Bad Gateway</h1><p>The upstream server answered nothing usable.</p></body></html>")
_PAD_CHUNK = 1024 * 1024
_TTL_MARK = "<access-token-ttl>"
_M = TypeVar("_M", bound=BaseModel)


def _utc_today() -> date:
    return datetime.now(UTC).date()


def _iso(epoch: float, *, whole_seconds: bool = False) -> str:
    spec = "seconds" if whole_seconds else "milliseconds"  # isoformat truncates, as such gateways do
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def _unprocessable(message: str, field: str) -> dict[str, Any]:
    return {"message": message, "errors": [{"field": field, "message": message}]}


class SandboxApp:
    """The ASGI application. Build it with `create_app`; all state lives on the server's one event loop."""

    def __init__(
        self,
        world: World,
        faults: Faults | None,
        *,
        admin: bool,
        token_ttl_seconds: int,
        wrap_token_in_data: bool,
        max_upload_bytes: int,
        residence_permit_needs_both_sides: bool,
        today: Callable[[], date],
    ) -> None:
        self.admin = admin
        self.wrap_token_in_data = wrap_token_in_data
        self.max_upload_bytes = max_upload_bytes
        self.rules = AttachRules(residence_permit_needs_both_sides=residence_permit_needs_both_sides)
        self.today = today
        self.tokens = TokenStore(token_ttl_seconds)
        self.startup_faults = faults or Faults()
        self._uri_rng = random.Random()
        # Customers with an attach being handled. Not cleared by reset: a request still in flight releases
        # its own flag, and clearing it under its feet would let a second attach slip past the 409.
        self.busy: set[str] = set()
        self._load_world(world)

    # ---- state -------------------------------------------------------------------------------------

    def _load_world(self, world: World) -> None:
        self.world = world
        self.secrets = {c.client_id: c.client_secret for c in world.clients}
        self.customers: dict[str, Customer] = {c.customer_id: c for c in world.customers}
        self.party_ids = {
            c.customer_id: frozenset(p.id for p in c.associated_parties) for c in world.customers
        }
        self.reset()

    def reset(self) -> None:
        """Forget every upload and attachment, restore party statuses and the start-up faults."""
        self.record = Record()
        earlier: FaultInjector | None = getattr(self, "injector", None)
        if earlier is not None:
            earlier.released.set()  # requests held by the faults being replaced go on
        self.injector: FaultInjector = FaultInjector(self.startup_faults)
        now = time.time()
        self.party_state: dict[tuple[str, str], tuple[str, float]] = {
            (c.customer_id, p.id): (p.verification_status, now)
            for c in self.world.customers
            for p in c.associated_parties
        }
        # Parties an attach landed on whose status has not moved yet: when it will (world.status_moves_after_s).
        self.moves_at: dict[tuple[str, str], float] = {}

    # ---- ASGI entry --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, receive, send)
        except ClientGone:
            pass
        except DropConnection:
            self.record.responses["dropped"] += 1
            if not await drop_connection(send):
                raise  # no transport to close (not uvicorn): let the server deal with it

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        parts = path.split("/")
        if method == "POST":
            if path == "/v1/oauth/token":
                return await self._api("token", scope, receive, send, self._token, auth=False)
            if path == "/v1/oauth/refresh-token":
                return await self._api("token", scope, receive, send, self._refresh, auth=False)
            if path == "/v1/customers/upload":
                return await self._api("upload", scope, receive, send, self._upload)
            if (
                len(parts) == 7
                and parts[1:3] == ["v2", "customers"]
                and parts[4:] == ["associated-parties", "individual", "attach"]
            ):
                return await self._api("attach", scope, receive, send, self._attach)
        elif method == "GET" and len(parts) == 4 and parts[1:3] == ["v2", "customers"]:
            return await self._api("customer", scope, receive, send, self._customer)
        if self.admin and path.startswith("/_sandbox/"):
            return await self._admin(method, path, receive, send)
        await drain(receive)
        await json_response(send, 404, _NOT_FOUND)

    async def _respond(
        self, send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.record.responses[str(status)] += 1
        await json_response(send, status, body, headers)

    # ---- the common fault pipeline -----------------------------------------------------------------

    async def _api(
        self,
        endpoint: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        handler: Callable[..., Any],
        *,
        auth: bool = True,
    ) -> None:
        self.record.requests[endpoint] += 1
        injector = self.injector
        fate = injector.fate(endpoint)
        refused = injector.throttle(endpoint)
        if refused is not None:
            await drain(receive)
            wait, with_header = refused
            extra = [(b"retry-after", str(max(1, math.ceil(wait))).encode())] if with_header else None
            await self._respond(send, 429, {"message": "Too Many Requests"}, extra)
            return
        if auth and not self._authorized(scope):
            await drain(receive)
            await self._respond(send, 401, _AUTH_FAILED)
            return
        await injector.wait_at_gate(endpoint)
        await handler(scope, receive, send, fate)

    def _authorized(self, scope: Scope) -> bool:
        value = header(scope, b"authorization")
        if value is None or not value.startswith(b"Bearer "):
            return False
        return self.tokens.valid(
            value[7:].decode("latin-1").strip(), self.injector.faults.token_expiry_seconds
        )

    async def _misbehave(self, fate: Fate, send: Send) -> bool:
        """Latency, then a drop or a 5xx before any work; True when the request was answered."""
        if fate.latency_s:
            await asyncio.sleep(fate.latency_s)
        if fate.drop:
            raise DropConnection
        if fate.error_status is not None:
            await self._respond(send, fate.error_status, {"message": _REASONS[fate.error_status]})
            return True
        return False

    async def _finish(self, send: Send, fate: Fate, status: int, body: Any) -> None:
        """Answer, late if the fate is slow, and lie about a success if it is commit-then-fail."""
        if fate.slow_s:
            await asyncio.sleep(fate.slow_s)
        if status == 200 and fate.commit_then_fail == "drop":
            raise DropConnection
        if status == 200 and fate.commit_then_fail == "500":
            status, body = 500, {"message": _REASONS[500]}
        if (status == 200 and (fate.html_200 or fate.huge_bytes)) or fate.dribble_s:
            await self._respond_misshapen(send, fate, status, body)
            return
        await self._respond(send, status, body)

    async def _respond_misshapen(self, send: Send, fate: Fate, status: int, body: Any) -> None:
        """An HTML page in place of a success, a success padded to `huge_bytes`, or a body dribbled byte by byte."""
        self.record.responses[str(status)] += 1
        content_type = b"application/json"
        chunks: Iterable[bytes]
        if status == 200 and fate.html_200:
            chunks, content_type, length = [_GATEWAY_PAGE], b"text/html; charset=utf-8", len(_GATEWAY_PAGE)
        elif status == 200 and fate.huge_bytes:
            length, chunks = _padded(body, fate.huge_bytes)
        else:
            raw = _encoded(body)
            chunks, length = [raw], len(raw)
        await streamed_response(send, status, content_type, length, chunks, byte_interval_s=fate.dribble_s)

    # ---- token -------------------------------------------------------------------------------------

    async def _json_body(self, receive: Receive, send: Send) -> tuple[bool, Any]:
        raw = await read_body(receive, MAX_JSON_BYTES)
        if raw is None:
            await self._respond(send, 422, _unprocessable("Request body too large", "body"))
            return False, None
        try:
            return True, json.loads(raw)
        except ValueError:
            await self._respond(send, 422, _unprocessable("Malformed JSON body", "body"))
            return False, None

    async def _token(self, scope: Scope, receive: Receive, send: Send, fate: Fate) -> None:
        ok, body = await self._json_body(receive, send)
        if not ok or await self._misbehave(fate, send):
            return
        errors = [
            {"field": name, "message": f"The {name} field is required."}
            for name in ("client_id", "client_secret")
            if not isinstance(body, dict) or not isinstance(body.get(name), str) or not body[name]
        ]
        if errors:
            await self._respond(send, 422, {"message": "The given data was invalid.", "errors": errors})
            return
        if self.secrets.get(body["client_id"]) != body["client_secret"]:
            await self._respond(send, 401, _AUTH_FAILED)
            return
        await self._finish(send, fate, 200, self._token_body(self.tokens.issue(
            body["client_id"], revoke_previous=self.injector.faults.revoke_previous_tokens)))

    async def _refresh(self, scope: Scope, receive: Receive, send: Send, fate: Fate) -> None:
        ok, body = await self._json_body(receive, send)
        if not ok or await self._misbehave(fate, send):
            return
        token = body.get("refresh_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            await self._respond(
                send, 422, _unprocessable("The refresh_token field is required.", "refresh_token")
            )
            return
        issued = self.tokens.refresh(token, revoke_previous=self.injector.faults.revoke_previous_tokens)
        if issued is None:
            await self._respond(send, 401, _AUTH_FAILED)
            return
        await self._finish(send, fate, 200, self._token_body(issued))

    def _token_body(self, issued: dict[str, Any]) -> Any:
        body = {"data": issued} if self.wrap_token_in_data else issued
        literal = self.injector.faults.token_ttl_literal
        if literal is None:
            return body
        # a number JSON cannot carry (Infinity) or no lifetime can be (-1), written as is: pre-encoded bytes
        issued["access_token_ttl"] = _TTL_MARK
        return _encoded(body).replace(f'"{_TTL_MARK}"'.encode(), literal.encode())

    # ---- customer ----------------------------------------------------------------------------------

    async def _customer(self, scope: Scope, receive: Receive, send: Send, fate: Fate) -> None:
        await drain(receive)
        if await self._misbehave(fate, send):
            return
        customer = self.customers.get(scope["path"].split("/")[3])
        if customer is None:
            await self._respond(send, 404, _NOT_FOUND)
            return
        await self._finish(send, fate, 200, {"data": self._customer_json(customer)})

    def _customer_json(self, customer: Customer) -> dict[str, Any]:
        """Only what the contract documents: no list of attached documents."""
        parties = []
        for p in customer.associated_parties:
            status, updated = self._status_of((customer.customer_id, p.id))
            parties.append(
                {
                    "id": p.id,
                    "type": p.type,
                    "ownership_percent": p.ownership_percent,
                    "email": p.email,
                    "verification": {
                        "status": status,
                        "reason": {"for_customer": None, "for_developer": None},
                        "updated_at": _iso(updated, whole_seconds=self.world.updated_at_whole_seconds),
                    },
                }
            )
        return {
            "customer_id": customer.customer_id,
            "type": customer.type,
            "customer_status": customer.customer_status,
            "associated_parties": parties,
        }

    def _status_of(self, key: tuple[str, str]) -> tuple[str, float]:
        """A party's status and when it changed, moving it first if a late move is due."""
        due = self.moves_at.get(key)
        if due is not None and time.time() >= due:
            del self.moves_at[key]
            self.party_state[key] = ("REVIEWING", due)
        return self.party_state[key]

    def _attached_to(self, key: tuple[str, str], now: float) -> None:
        """An attach landed on the party: INITIATED moves on now, later, or never (the world says which)."""
        if self.party_state[key][0] != "INITIATED" or key in self.moves_at:
            return
        delay = self.world.status_moves_after_s
        if delay == 0:
            self.party_state[key] = ("REVIEWING", now)
        elif delay is not None:
            self.moves_at[key] = now + delay

    # ---- upload ------------------------------------------------------------------------------------

    async def _upload(self, scope: Scope, receive: Receive, send: Send, fate: Fate) -> None:
        try:
            form = await parse_upload(
                header(scope, b"content-type") or b"", body_chunks(receive), self.max_upload_bytes
            )
        except UploadRejected as exc:
            await self._respond(send, 422, _unprocessable(str(exc), "body"))
            return
        if await self._misbehave(fate, send):
            return
        customer_id = form.fields.get("customer_id")
        if not customer_id:
            await self._respond(
                send, 422, _unprocessable("The customer_id field is required.", "customer_id")
            )
            return
        if customer_id not in self.customers:
            await self._respond(send, 404, _NOT_FOUND)
            return
        if not form.files:
            await self._respond(send, 422, _unprocessable("At least one file is required.", "files"))
            return
        errors = []
        for part in form.files:
            if part.too_large:
                errors.append(
                    {
                        "field": part.field,
                        "message": f"File too large (at most {self.max_upload_bytes} bytes).",
                    }
                )
            elif part.size == 0:
                errors.append({"field": part.field, "message": "File is empty."})
            elif part.content_type is None:
                errors.append(
                    {"field": part.field, "message": "File type not accepted: PDF, JPEG or PNG only."}
                )
        if errors:
            await self._respond(send, 422, {"message": errors[0]["message"], "errors": errors})
            return
        files = []
        for part in form.files:
            uri = self._new_uri(part.filename or part.field)
            self.record.add_upload(
                Upload(customer_id, uri, part.sha256, part.size, part.content_type or "", part.filename)
            )
            files.append({part.field: uri})
        await self._finish(send, fate, 200, {"data": {"files": files}})

    def _new_uri(self, filename: str) -> str:
        name = safe_filename(filename)
        while True:
            uri = "/" + "".join(self._uri_rng.choices(_URI_ALPHABET, k=8)) + "_" + name
            if uri not in self.record.by_uri:
                return uri

    # ---- attach ------------------------------------------------------------------------------------

    async def _attach(self, scope: Scope, receive: Receive, send: Send, fate: Fate) -> None:
        raw = await read_body(receive, MAX_JSON_BYTES)
        customer_id = scope["path"].split("/")[3]
        if customer_id not in self.customers:
            await self._respond(send, 404, _NOT_FOUND)
            return
        if customer_id in self.busy:
            await self._respond(
                send,
                409,
                {
                    "error": {
                        "code": "conflict",
                        "message": "An attach request is already in progress for this customer",
                    }
                },
            )
            return
        self.busy.add(customer_id)
        try:
            await self._attach_locked(customer_id, raw, send, fate)
        finally:
            self.busy.discard(customer_id)

    async def _attach_locked(self, customer_id: str, raw: bytes | None, send: Send, fate: Fate) -> None:
        if await self._misbehave(fate, send):
            return
        if raw is None:
            await self._respond(send, 422, _unprocessable("Request body too large", "body"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            await self._respond(send, 422, _unprocessable("Malformed JSON body", "body"))
            return
        by_uri = self.record.by_uri
        check = check_attach(
            body,
            customer_id=customer_id,
            party_ids=self.party_ids[customer_id],
            uri_owner=lambda uri: u.customer_id if (u := by_uri.get(uri)) is not None else None,
            today=self.today(),
            rules=self.rules,
            identified=self.record.identified_parties.get(customer_id, ()),
        )
        refuse = self.injector.faults.refuse_parties
        errors = check.errors or (
            refusals(body, refuse.party_ids, name_path=refuse.name_path) if refuse is not None else None
        )
        if errors is not None:  # an empty map too: a refusal that names no field
            await self._respond(send, 400, {"status": 400, "message": "Validation failed", "data": errors})
            return
        if check.foreign_uris:
            await self._respond(
                send,
                403,
                {"error": {"code": "forbidden", "message": "A file uri does not belong to this customer"}},
            )
            return
        now = time.time()
        for party_id, document in check.documents:
            self.record.add_attachment(customer_id, party_id, document)
            self._attached_to((customer_id, party_id), now)
        await self._finish(send, fate, 200, {"data": {}})

    async def _change_party(self, raw: bytes, send: Send) -> None:
        change = await _parse_or_422(send, PartyChange, raw, "party change")
        if change is None:
            return
        customer = self.customers.get(change.customer_id)
        party = next((p for p in customer.associated_parties if p.id == change.party_id), None) if customer else None
        if party is None:
            await json_response(send, 404, _NOT_FOUND)
            return
        party.email = change.email
        await json_response(send, 200, {"data": {}})

    # ---- admin -------------------------------------------------------------------------------------

    async def _admin(self, method: str, path: str, receive: Receive, send: Send) -> None:
        raw = await read_body(receive, MAX_JSON_BYTES)
        route = (method, path)
        if route == ("GET", "/_sandbox/record"):
            await json_response(send, 200, {**self.record.as_json(), "rate": self.injector.rate_seen(),
                                            "held": self.injector.held})
        elif route == ("POST", "/_sandbox/reset"):
            self.reset()
            await json_response(send, 200, {"data": {}})
        elif route == ("GET", "/_sandbox/faults"):
            await json_response(send, 200, {"data": self.injector.faults.model_dump(mode="json")})
        elif route == ("POST", "/_sandbox/faults"):
            faults = await _parse_or_422(send, Faults, raw or b"{}", "faults")
            if faults is not None:
                self.injector.released.set()  # requests held by the faults being replaced go on
                self.injector = FaultInjector(faults)
                await json_response(send, 200, {"data": faults.model_dump(mode="json")})
        elif route == ("POST", "/_sandbox/release"):
            self.injector.released.set()
            await json_response(send, 200, {"data": {}})
        elif route == ("POST", "/_sandbox/party"):
            await self._change_party(raw or b"", send)
        elif route == ("POST", "/_sandbox/world"):
            world = await _parse_or_422(send, World, raw or b"", "world")
            if world is not None:
                self._load_world(world)
                await json_response(send, 200, {"data": {}})
        else:
            await json_response(send, 404, _NOT_FOUND)


class PartyChange(BaseModel):
    """``POST /_sandbox/party``: change a party's email in place (record and statuses kept), as a person at Fin
    correcting it between two runs would."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    party_id: str
    email: str | None


def _encoded(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()


def _padded(body: Any, size: int) -> tuple[int, Iterator[bytes]]:
    """The JSON object `body` with a `padding` string field making it `size` bytes (at least the body's own), as
    its length and chunks of at most 1 MiB made as they are sent."""
    head = _encoded(body)[:-1] + b',"padding":"'
    pad = max(size - len(head) - 2, 0)

    def chunks() -> Iterator[bytes]:
        yield head
        left = pad
        while left > 0:
            yield b"x" * min(left, _PAD_CHUNK)
            left -= _PAD_CHUNK
        yield b'"}'

    return len(head) + pad + 2, chunks()


def _pydantic_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]


async def _parse_or_422(send: Send, model: type[_M], raw: bytes, what: str) -> _M | None:
    """The admin request's body as ``model``; or None, once a 422 "Invalid <what>" has been sent."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        await json_response(send, 422, {"message": f"Invalid {what}", "errors": _pydantic_errors(exc)})
        return None


def create_app(
    world: World,
    faults: Faults | None = None,
    *,
    admin: bool = True,
    token_ttl_seconds: int = 86400,
    wrap_token_in_data: bool = False,
    max_upload_bytes: int = 50 * 1024 * 1024,
    residence_permit_needs_both_sides: bool = False,
    today: Callable[[], date] = _utc_today,
) -> SandboxApp:
    """Build the sandbox ASGI app.

    `faults` are the start-up faults (also restored by `POST /_sandbox/reset`); `admin` enables the
    `/_sandbox/*` routes; `today` decides what "expired" means (inject a fixed date in tests).
    """
    return SandboxApp(
        world,
        faults,
        admin=admin,
        token_ttl_seconds=token_ttl_seconds,
        wrap_token_in_data=wrap_token_in_data,
        max_upload_bytes=max_upload_bytes,
        residence_permit_needs_both_sides=residence_permit_needs_both_sides,
        today=today,
    )
