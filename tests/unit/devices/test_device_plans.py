"""Which devices a DeviceMigration takes, what each is to do, and the status it shows: pure
decisions over records (selection, plans, progress)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from ferry.api.devicemigration import DeviceMigrationSpec
from ferry.api.status import ActionState, DevicePhase, MigrationPhase
from ferry.devices.plans import DeviceRequests, Directories, decide_plan
from ferry.devices.progress import progress
from ferry.devices.selection import SelectedDevice, select
from ferry.state.rows import DeviceAgentInfo, DevicePlan, DeviceResult, DiscoveredDevice

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
KEY = "ns/move"
DIRS = Directories(source="src", target="tgt", target_dns_domain="tgt.test",
                   target_domain_controller="dc1.tgt.test",
                   target_computers_ou="CN=Computers,DC=tgt,DC=test",
                   source_domains=("S-1-5-21-1-2-3",))


def spec(**changes: Any) -> DeviceMigrationSpec:
    body: dict[str, Any] = {
        "source": "src", "target": "tgt", "workflow": "users",
        "actions": ["ReACL", "DomainJoin", "Reboot"],
        "waves": [{"name": "pilot", "devices": ["ws1"]},
                  {"name": "rest", "selector": {"matchLabels": {"ring": "2"}}}]}
    body.update(changes)
    return DeviceMigrationSpec.model_validate(body)


def agent(name: str, **labels: str) -> DeviceAgentInfo:
    return DeviceAgentInfo(id=f"device-{name.lower()}", migration=KEY, name=name, os="linux",
                           labels=labels, enrolled_at=T0, last_seen=T0)


def result(action_id: str, ok: bool = True, generation: int = 1, minute: int = 1,
           message: str = "") -> DeviceResult:
    return DeviceResult(migration=KEY, device="WS1", generation=generation,
                        action_id=action_id, ok=ok, message=message or action_id,
                        attempt=1, finished_at=T0 + timedelta(minutes=minute))


def plan_for(s: DeviceMigrationSpec, previous: DevicePlan | None = None,
             results: list[DeviceResult] | None = None, cutover: datetime | None = None,
             paused: bool = False, **requests: bool) -> DevicePlan:
    device = SelectedDevice("WS1", "pilot", agent("WS1"))
    return decide_plan(KEY, s, DIRS, device, cutover, paused, previous, results or [],
                       DeviceRequests(**requests), "v1").plan


def test_devices_go_to_the_first_wave_that_selects_them_by_name_label_or_ou() -> None:
    s = spec(waves=[
        {"name": "pilot", "devices": ["ws1"]},
        {"name": "paris", "selector": {"matchExpressions": [
            {"key": "site", "operator": "In", "values": ["paris"]},
            {"key": "ferry.dev/os", "operator": "In", "values": ["linux"]}]}},
        {"name": "ou", "ous": ["OU=Workstations,DC=src,DC=test"]}])
    agents = [agent("WS1", site="paris"), agent("WS2", site="paris"), agent("WS9", site="oslo")]
    found = [DiscoveredDevice("g3", "WS3", "CN=WS3,OU=Laptops,OU=Workstations,DC=src,DC=test"),
             DiscoveredDevice("g4", "WS4", "CN=WS4,OU=Servers,DC=src,DC=test")]
    devices, unselected = select(s.waves, agents, found)
    assert [(d.name, d.wave, d.agent is not None) for d in devices] == [
        ("WS1", "pilot", True), ("WS2", "paris", True), ("WS3", "ou", False)]
    assert unselected == ["WS9"]


def test_a_plan_holds_cutover_actions_until_the_cutover_and_stages_the_join() -> None:
    cutover = T0 + timedelta(hours=2)
    plan = plan_for(spec(options={"join": {"targetOU": "OU=New,DC=tgt,DC=test"}}),
                    cutover=cutover)
    assert [(a.id, a.not_before) for a in plan.actions] == [
        ("1-ReACL", None), ("2-DomainJoin", cutover), ("3-Reboot", cutover)]
    reacl, join, reboot = plan.actions
    assert reacl.arguments == {"mode": "add", "scopes": ["Files", "Registry", "Profiles",
                                                         "LocalGroups"],
                               "sourceDomains": ["S-1-5-21-1-2-3"]}
    assert join.stage is not None and join.stage.mode == "password"
    assert (join.stage.environment, join.stage.ou, join.stage.name) == (
        "tgt", "OU=New,DC=tgt,DC=test", "WS1")
    assert "disableSource" not in join.arguments       # keepSourceAccount defaults to true
    assert reboot.arguments["delaySeconds"] == 300
    assert (plan.generation, plan.state) == (1, "run")


def test_an_offline_join_is_staged_as_a_blob_and_a_dropped_source_account_is_disabled() -> None:
    plan = plan_for(spec(actions=["OfflineDomainJoin"],
                         options={"keepSourceAccount": False}))
    (join,) = plan.actions
    assert join.stage is not None and join.stage.mode == "offline"
    assert join.stage.ou == "CN=Computers,DC=tgt,DC=test"
    assert join.arguments["disableSource"] == {"environment": "src", "name": "WS1"}


def test_a_paused_wave_plans_paused_and_finished_actions_leave_the_plan() -> None:
    first = plan_for(spec(), paused=True)
    assert first.state == "paused"
    later = plan_for(spec(), previous=first, results=[result("1-ReACL")])
    assert [a.id for a in later.actions] == ["1-ReACL", "2-DomainJoin", "3-Reboot"]
    assert (later.generation, later.state) == (1, "run")


def test_a_retry_starts_a_new_generation_with_what_is_left_and_only_for_a_failed_device() -> None:
    first = plan_for(spec())
    failed = [result("1-ReACL"), result("2-DomainJoin", ok=False, minute=2)]
    assert plan_for(spec(), previous=first, results=failed).actions == first.actions
    assert plan_for(spec(), previous=first, results=failed).generation == 1
    retried = plan_for(spec(), previous=first, results=failed, retry=True)
    assert retried.generation == 2
    assert [a.id for a in retried.actions] == ["2-DomainJoin", "3-Reboot"]
    # A device that did not fail has nothing to retry.
    assert plan_for(spec(), previous=first, results=[result("1-ReACL")],
                    retry=True).generation == 1


def test_a_rollback_undoes_what_was_done_newest_first_and_reboots() -> None:
    first = plan_for(spec())
    done = [result("1-ReACL"), result("2-DomainJoin", minute=2), result("3-Reboot", minute=3)]
    back = plan_for(spec(), previous=first, results=done, rollback=True)
    assert back.generation == 2
    assert [a.id for a in back.actions] == ["r1-RestoreSource", "r2-UndoReACL", "r3-Reboot",
                                            "r4-UploadLogs"]
    assert back.actions[1].arguments["mode"] == "add"
    # Not joined yet: only the ReACL is undone, and nothing is rebooted for nothing.
    early = plan_for(spec(), previous=first, results=[result("1-ReACL")], rollback=True)
    assert [a.id for a in early.actions] == ["r1-UndoReACL", "r2-Reboot", "r3-UploadLogs"]


def test_a_rollback_after_the_source_account_was_disabled_is_refused_with_the_reason() -> None:
    s = spec(options={"keepSourceAccount": False})
    first = plan_for(s)
    done = [result("1-ReACL"), result("2-DomainJoin", minute=2)]
    decision = decide_plan(KEY, s, DIRS, SelectedDevice("WS1", "pilot", agent("WS1")), None,
                           False, first, done, DeviceRequests(rollback=True), "v1")
    assert decision.plan.generation == 1
    assert "keepSourceAccount is false" in decision.refusal


def shown(s: DeviceMigrationSpec, plan: DevicePlan | None, results: list[DeviceResult],
          with_agent: bool = True, now: datetime = T0 + timedelta(minutes=30)) -> Any:
    device = SelectedDevice("WS1", "pilot", agent("WS1") if with_agent else None)
    return progress(s, DIRS, [device], {"WS1": plan} if plan else {},
                    {"WS1": results}, {}, now)


def test_device_phases_follow_the_action_it_is_on() -> None:
    s = spec()
    p = plan_for(s)
    assert shown(s, None, [], with_agent=False).devices[0].phase is DevicePhase.PENDING
    assert "ferry devices token create" in shown(s, None, [], with_agent=False).devices[0].message
    now = shown(s, p, [])
    assert now.devices[0].phase is DevicePhase.REACL
    assert [a.state for a in now.devices[0].actions] == [
        ActionState.RUNNING, ActionState.PENDING, ActionState.PENDING]
    assert now.phase is MigrationPhase.RUNNING
    joining = plan_for(s, previous=p, results=[result("1-ReACL")])
    assert shown(s, joining, [result("1-ReACL")]).devices[0].phase is DevicePhase.JOINING


def test_a_device_prepared_before_its_cutover_is_ready_and_says_until_when() -> None:
    s = spec()
    cutover = T0 + timedelta(hours=5)
    p = plan_for(s, cutover=cutover, results=[result("1-ReACL")],
                 previous=plan_for(s, cutover=cutover))
    device = shown(s, p, [result("1-ReACL")]).devices[0]
    assert device.phase is DevicePhase.READY
    assert "2026-12-02T14:00:00Z" in (device.message or "")


def test_failed_done_and_rolled_back_devices_and_the_migration_phase() -> None:
    s = spec()
    p = plan_for(s)
    failed = shown(s, p, [result("1-ReACL", ok=False, message="3 files failed")])
    assert failed.devices[0].phase is DevicePhase.FAILED
    assert failed.devices[0].message == "1-ReACL: 3 files failed"
    assert (failed.failed, failed.phase) == (1, MigrationPhase.FAILED)
    done = [result("1-ReACL"), result("2-DomainJoin", minute=2), result("3-Reboot", minute=3)]
    finished = plan_for(s, previous=p, results=done)
    complete = shown(s, finished, done)
    assert complete.devices[0].phase is DevicePhase.DONE
    assert (complete.done, complete.total, complete.text) == (1, 1, "1/1")
    assert complete.phase is MigrationPhase.COMPLETED
    assert complete.waves[0].done == 1 and complete.current_wave is None
    back = plan_for(s, previous=finished, results=done, rollback=True)
    rolled = done + [result(a.id, generation=2, minute=10 + i)
                     for i, a in enumerate(back.actions)]
    after = shown(s, plan_for(s, previous=back, results=rolled, rollback=True), rolled)
    assert after.devices[0].phase is DevicePhase.ROLLED_BACK
    assert after.rolled_back == 1 and after.phase is MigrationPhase.COMPLETED


def test_a_rolled_back_device_rolls_forward_on_a_retry_once_the_rollback_request_is_gone(
        ) -> None:
    s = spec()
    first = plan_for(s)
    done = [result("1-ReACL"), result("2-DomainJoin", minute=2), result("3-Reboot", minute=3)]
    back = plan_for(s, previous=first, results=done, rollback=True)
    rolled = done + [result(a.id, generation=2, minute=10 + i)
                     for i, a in enumerate(back.actions)]
    # While the rollback is asked for, a retry changes nothing.
    assert plan_for(s, previous=back, results=rolled, rollback=True, retry=True) == back
    again = plan_for(s, previous=back, results=rolled, retry=True)
    assert again.generation == 3
    assert [a.id for a in again.actions] == ["1-ReACL", "2-DomainJoin", "3-Reboot"]
    fresh = shown(s, again, rolled).devices[0]
    assert fresh.phase is DevicePhase.REACL            # not Done from the first stretch
    assert [a.state for a in fresh.actions] == [
        ActionState.RUNNING, ActionState.PENDING, ActionState.PENDING]
    # It fails on the join, is retried with what is left of this stretch, then rolled back
    # again: the second rollback undoes what the second stretch did.
    redone = [*rolled, result("1-ReACL", generation=3, minute=20),
              result("2-DomainJoin", ok=False, generation=3, minute=21)]
    retried = plan_for(s, previous=again, results=redone, retry=True)
    assert (retried.generation, [a.id for a in retried.actions]) == (
        4, ["2-DomainJoin", "3-Reboot"])
    second = plan_for(s, previous=retried, results=redone, rollback=True)
    assert second.generation == 5
    assert [a.id for a in second.actions] == ["r1-UndoReACL", "r2-Reboot", "r3-UploadLogs"]
    assert shown(s, second, redone).devices[0].phase is DevicePhase.ROLLING_BACK


@pytest.mark.parametrize(("change", "message"), [
    ({"actions": ["DomainJoin", "OfflineDomainJoin"]}, "both join the device"),
    ({"actions": ["ReACL", "ReACL"]}, "each action at most once"),
    ({"actions": ["EntraJoin"]}, "EntraJoin needs options.entraJoin"),
    ({"waves": [{"name": "a", "devices": ["WS1"]}, {"name": "a", "devices": ["WS2"]}]},
     "wave names must be unique"),
    ({"waves": [{"name": "a"}]}, "select devices by devices, selector or ous"),
    ({"waves": [{"name": "a", "devices": ["not a name"]}]}, "should match pattern"),
    ({"waves": [{"name": "a", "ous": ["Workstations"]}]}, "not a distinguished name"),
    ({"waves": [{"name": "a", "selector": {}}]}, "an empty selector would take every device"),
    ({"options": {"reacl": {"mode": "swap"}}}, "'add', 'replace' or 'remove'"),
])
def test_bad_specs_are_refused_naming_the_field_and_the_fix(change: dict[str, Any],
                                                            message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**change)


def test_the_example_device_migration_loads_with_the_ad_to_ad_manifests() -> None:
    from pathlib import Path

    from ferry.api.loader import load_manifests

    examples = Path(__file__).resolve().parents[3] / "examples"
    manifests = load_manifests([examples / "ad-to-ad", examples / "device-migration"])
    (migration,) = manifests.device_migrations.values()
    assert [w.name for w in migration.spec.waves] == ["pilot", "finance"]
    assert migration.spec.waves[1].paused and migration.spec.options.reacl.mode == "add"
