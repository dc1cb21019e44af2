"""A directory session whose calls agents carry out, through the gateway (connection: agent).

Each call is submitted as one work item (a batch of writes is one call) and its result chunks
are collected by long-polling.
The gateway re-issues the work of an agent that disappears; a new generation of chunks means
the work started over, so what was collected is dropped and collected again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from ferry.errors import FerryError
from ferry.settings import GatewaySettings
from ferry_agent.dc.sid_history import SidHistoryRequest, SidHistoryResult
from ferry_agent.directory.batch import Write, WriteResult
from ferry_agent.directory.read import AdWatermark, Changes, Entry, ReadScope
from ferry_agent.errors import FerryAgentError
from ferry_agent.passwords.transfer import PasswordSet, SealedPassword
from ferry_agent.protocol import (
    POLL_WAIT_SECONDS,
    PROTOCOL_VERSION,
    ErrorInfo,
    decode_changes,
    decode_entry,
    decode_sealed_password,
    decode_sid_history_outcome,
    decode_write_result,
    encode_password_set,
    encode_scope,
    encode_sid_history_request,
    encode_write,
    raise_error,
)
from ferry_agent.sealed import Recipient
from ferry_agent.transport import GatewayClient, GatewayUnavailable, backoff


class GatewayWorkError(FerryError):
    """The gateway could not carry out a call (lost it, refused it, or timed out)."""


class RemoteDirectory:
    """The DirectoryOperations of an environment, carried out by its agents."""

    def __init__(self, settings: GatewaySettings, environment: str,
                 call_timeout: float = 3600.0, write_connections: int = 1):
        self.environment = environment
        self.write_connections = write_connections   # the agent's pool for each batch
        self.client = GatewayClient(settings.url, ca_file=settings.ca_file)
        self._headers = {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
        self._timeout = call_timeout

    def close(self) -> None:
        self.client.close()

    # the calls -------------------------------------------------------------------------
    def exists(self, dn: str) -> bool:
        return bool(self._value("exists", {"dn": dn}))

    def initial_watermark(self, scope: ReadScope) -> AdWatermark:
        return AdWatermark.from_dict(self._value("initial_watermark",
                                               {"scope": encode_scope(scope)}))

    def read_full(self, scope: ReadScope, attributes: Sequence[str]) -> Iterator[Entry]:
        return self._entries("read_full", {"scope": encode_scope(scope),
                                           "attributes": list(attributes)})

    def read_changes(self, scope: ReadScope, attributes: Sequence[str],
                     watermark: AdWatermark) -> Changes:
        return decode_changes(self._call("read_changes", {
            "scope": encode_scope(scope), "attributes": list(attributes),
            "watermark": watermark.to_dict()}))

    def read_by_guids(self, guids: Sequence[str], attributes: Sequence[str]
                      ) -> Iterator[Entry]:
        return self._entries("read_by_guids", {"guids": list(guids),
                                               "attributes": list(attributes)})

    def resolve_dns(self, dns: Sequence[str]) -> dict[str, str]:
        return dict(self._value("resolve_dns", {"dns": list(dns)}))

    def read_by_values(self, attribute: str, values: Sequence[str], attributes: Sequence[str],
                       scope: ReadScope) -> Iterator[Entry]:
        return self._entries("read_by_values", {
            "attribute": attribute, "values": list(values), "attributes": list(attributes),
            "scope": encode_scope(scope)})

    def write(self, writes: Sequence[Write]) -> list[WriteResult]:
        pages = self._call("write", {"writes": [encode_write(w) for w in writes],
                                     "connections": self.write_connections})
        results = [decode_write_result(r) for page in pages for r in page or ()]
        if len(results) != len(writes):
            raise GatewayWorkError(f"an agent of environment {self.environment} answered"
                                   f" {len(results)} results for {len(writes)} writes")
        return results

    def add_sid_history(self, requests: Sequence[SidHistoryRequest]
                        ) -> list[SidHistoryResult | FerryAgentError]:
        pages = self._call("add_sid_history", {
            "items": [encode_sid_history_request(r) for r in requests]})
        return [decode_sid_history_outcome(o) for page in pages for o in page or ()]

    def check_migration(self, replication: bool, reset_password_ous: Sequence[str],
                        sid_history: bool, dc_agent: bool = False,
                        source_domains: Sequence[str] = ()) -> list[tuple[bool, str]]:
        found = self._value("check_migration", {
            "replication": replication, "resetPasswordOUs": list(reset_password_ous),
            "sidHistory": sid_history, "dcAgent": dc_agent,
            "sourceDomains": list(source_domains)})
        return [(bool(f.get("ok")), str(f.get("message", ""))) for f in found or []
                if isinstance(f, dict)]

    def run_script(self, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """A script step carried out by one of the environment's agents (its answer chunk);
        waits at most `timeout` seconds beyond the script's own."""
        answer = self._value("run_script", arguments, timeout)
        if not isinstance(answer, dict):
            raise GatewayWorkError(f"run_script for environment {self.environment}: no answer")
        return answer

    def recipients(self) -> list[Recipient]:
        """The keys of the environment's agents: a password for them is sealed to each, so
        whichever agent takes the work can open it, and nothing in between can."""
        status, body = self.client.get(f"/v1/environments/{self.environment}/agents",
                                       headers=self._headers, timeout=POLL_WAIT_SECONDS)
        if status != 200 or not body:
            raise GatewayWorkError(f"the gateway did not list the agents of environment"
                                   f" {self.environment} ({status}): {_message(body)}")
        keys = [Recipient.from_pem(a["publicKey"]) for a in body.get("agents") or []
                if isinstance(a, dict) and isinstance(a.get("publicKey"), str)]
        if not keys:
            raise GatewayWorkError(
                f"no agent of environment {self.environment} has a key to receive passwords"
                " (agents enrolled before Ferry kept keys must run `ferry-agent enroll` again)")
        return keys

    def read_passwords(self, watermark: str | None, guids: Sequence[str] | None,
                       recipients: Sequence[Recipient]) -> RemotePasswords:
        chunks = self._call("read_passwords", {
            "watermark": watermark, "guids": None if guids is None else list(guids),
            "recipients": [r.pem() for r in recipients]})
        return RemotePasswords(chunks)

    def set_passwords(self, items: Sequence[PasswordSet]) -> list[str | None]:
        pages = self._call("set_passwords", {"items": [encode_password_set(i) for i in items]})
        outcomes = [str(o["error"]) if isinstance(o, dict) and o.get("error") else None
                    for page in pages for o in page or ()]
        if len(outcomes) != len(items):
            raise GatewayWorkError(f"an agent of environment {self.environment} answered"
                                   f" {len(outcomes)} outcomes for {len(items)} passwords")
        return outcomes

    # submitting and collecting ---------------------------------------------------------
    def _value(self, operation: str, arguments: dict[str, Any],
               timeout: float | None = None) -> Any:
        chunks = self._call(operation, arguments, timeout)
        return chunks[-1] if chunks else None

    def _entries(self, operation: str, arguments: dict[str, Any]) -> Iterator[Entry]:
        for page in self._call(operation, arguments):
            for data in page or []:
                yield decode_entry(data)

    def _call(self, operation: str, arguments: dict[str, Any],
              timeout: float | None = None) -> list[Any]:
        limit = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        status, body = self._post("/v1/work", {
            "v": PROTOCOL_VERSION, "environment": self.environment, "operation": operation,
            "arguments": arguments}, deadline)
        if status != 200 or not body or not isinstance(body.get("workId"), str):
            raise GatewayWorkError(f"the gateway refused {operation} for environment"
                                   f" {self.environment} ({status}): {_message(body)}")
        work_id = body["workId"]
        values: dict[int, Any] = {}
        generation: Any = None
        after = -1
        while time.monotonic() < deadline:
            status, body = self._post(f"/v1/work/{work_id}/results", {
                "v": PROTOCOL_VERSION, "after": after, "wait": POLL_WAIT_SECONDS}, deadline)
            if status == 404:
                raise GatewayWorkError(f"the gateway lost {operation} ({work_id}) for"
                                       f" environment {self.environment}; was it restarted?")
            if status != 200 or body is None:
                raise GatewayWorkError(f"{operation} ({work_id}): {status} {_message(body)}")
            if body.get("generation") != generation:
                if generation is not None and after >= 0:
                    values, after = {}, -1  # an agent was lost: the work started over
                    generation = body.get("generation")
                    continue
                generation = body.get("generation")
            for chunk in body.get("chunks") or []:
                seq = int(chunk["seq"])
                if seq <= after:
                    continue
                after = seq
                if chunk.get("error"):
                    raise_error(ErrorInfo(**chunk["error"]))
                values[seq] = chunk.get("value")
                if chunk.get("final"):
                    return [values[i] for i in sorted(values)]
        raise GatewayWorkError(f"{operation} for environment {self.environment} did not finish"
                               f" within {limit:.0f} s; are its agents connected?")

    def _post(self, path: str, body: dict[str, Any], deadline: float
              ) -> tuple[int, dict[str, Any] | None]:
        delays = backoff(base=0.5, cap=10.0)
        while True:
            try:
                return self.client.post(path, body, headers=self._headers,
                                        timeout=POLL_WAIT_SECONDS + 15)
            except GatewayUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise GatewayWorkError(f"the gateway is unreachable: {exc}") from None
                time.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))


class RemotePasswords:
    """An agent's sealed passwords (pages, then the watermark), read like SealedReads."""

    def __init__(self, chunks: list[Any]):
        self._pages = chunks[:-1]
        last = chunks[-1] if chunks else None
        self.watermark: str | None = last.get("watermark") if isinstance(last, dict) else None

    def __iter__(self) -> Iterator[SealedPassword]:
        for page in self._pages:
            for data in page or []:
                yield decode_sealed_password(data)


def _message(body: dict[str, Any] | None) -> str:
    error = (body or {}).get("error")
    return str(error.get("message") if isinstance(error, dict) else error or "")
