"""`ferry guests invite`: send the invitations Ferry held back when it created B2B guests.

Only guests Ferry manages are considered (joined in a pair that writes the environment), and
only those that have not redeemed an invitation yet; a CEL selector narrows them further.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.api.environment import DirectoryType
from ferry.api.loader import Manifests
from ferry.connectors.entra.connector import EntraConnector
from ferry.connectors.factory import open_connector
from ferry.engine.expressions import CompiledExpression
from ferry.errors import InvalidInput
from ferry.secrets import SecretSource
from ferry.settings import RunSettings
from ferry.state.store import StateStore
from ferry.sync.pairs import workflow_pairs

DEFAULT_REDIRECT = "https://myapps.microsoft.com"


class GuestsError(InvalidInput):
    """The request cannot be carried out as given; the message says why."""


@dataclass(frozen=True)
class Invited:
    guest: str   # the guest's userPrincipalName
    mail: str
    sent: bool   # False in a dry run


def invite_guests(manifests: Manifests, environment: str, store: StateStore,
                  secrets: SecretSource, settings: RunSettings, where: str | None = None,
                  dry_run: bool = False) -> list[Invited]:
    """Invite the managed, unredeemed guests of `environment` that `where` selects."""
    env = manifests.environments.get(environment)
    if env is None or env.spec.type is not DirectoryType.ENTRA_ID:
        raise GuestsError(f"Environment {environment!r} is not an Entra ID environment of the"
                          " manifests")
    selector = (CompiledExpression(where, owner="--where", field="selector",
                                   owner_kind="option", field_kind="expression")
                if where else None)
    managed: set[str] = set()
    redirect = DEFAULT_REDIRECT
    for workflow in manifests.workflows.values():
        for pair in workflow_pairs(manifests, workflow):
            if pair.target == environment:
                managed.update(store.joins.confirmed(pair.rules.name).values())
                template = manifests.templates[pair.template].spec
                redirect = template.guests.invite_redirect_url
    connector = open_connector(env, secrets, settings)
    assert isinstance(connector, EntraConnector)
    try:
        chosen = []
        for guest in connector.pending_guests():
            if guest.anchor not in managed:
                continue
            if selector is not None and selector.execute(guest) is not True:
                continue
            chosen.append(guest)
        invited = []
        for guest in chosen:
            mail = str(guest.attributes.get("mail") or "")
            if not dry_run:
                connector.send_invitation(mail, redirect)
            invited.append(Invited(str(guest.attributes.get("userPrincipalName", "")), mail,
                                   not dry_run))
        return invited
    finally:
        connector.close()
