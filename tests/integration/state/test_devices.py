"""Device migration in the state store, on SQLite and PostgreSQL: tokens used as often as they
allow (also concurrently), re-enrollment, plans, results once per generation, staged secrets
gone once used, bounded logs, SID translations with their conflicts, discovered devices."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from ferry.state.rows import (
    DevicePlan,
    DeviceResult,
    DeviceSecret,
    PlannedAction,
    StageRequest,
)
from ferry.state.store import StateStore

MIGRATION = "it/wave-one"
LATER = datetime.now(UTC) + timedelta(hours=1)
KEY = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"


def _enroll(store: StateStore, token: str, agent_id: str, name: str) -> bool:
    return store.devices.enroll(token, agent_id, name, "host", "0.1", "linux",
                                {"ring": "pilot"}, KEY) is not None


def _plan(device: str, generation: int = 1, state: str = "run") -> DevicePlan:
    join = PlannedAction("2-DomainJoin", "DomainJoin", {"disableSource": None}, LATER,
                         StageRequest("tgt", "password", device, "OU=WS,DC=tgt", "tgt.example",
                                      "dc1.tgt.example"))
    return DevicePlan(MIGRATION, device, "pilot", generation, state, "src", "tgt",
                      (PlannedAction("1-ReACL", "ReACL", {"mode": "add"}), join), "v1")


def _result(device: str, action: str, ok: bool = True, generation: int = 1) -> DeviceResult:
    return DeviceResult(MIGRATION, device, generation, action, ok, "done", 1,
                        datetime.now(UTC), {"files": {"scanned": 3, "changed": 1}})


def test_a_wave_token_enrolls_many_until_revoked_and_a_single_use_one_once(location: str
                                                                          ) -> None:
    store = StateStore(location)
    store.devices.add_token("wave", MIGRATION, None, LATER)
    store.devices.add_token("once", MIGRATION, 1, LATER)
    assert _enroll(store, "wave", "device-1", "WS1") and _enroll(store, "wave", "device-2", "WS2")
    assert _enroll(store, "once", "device-3", "WS3")
    assert not _enroll(store, "once", "device-4", "WS4")
    assert store.devices.token_state("once") == "used"
    assert store.devices.revoke_tokens(MIGRATION) == 2
    assert not _enroll(store, "wave", "device-5", "WS5")
    assert store.devices.token_state("wave") == "revoked"
    assert store.devices.token_state("nope") == "unknown"
    agents = store.devices.agents(MIGRATION)
    assert [a.name for a in agents] == ["WS1", "WS2", "WS3"]
    assert agents[0].labels == {"ring": "pilot"} and store.devices.public_key("device-1") == KEY


def test_a_token_limited_to_n_uses_enrolls_n_devices_under_concurrent_enrollment(
        location: str) -> None:
    store = StateStore(location)
    store.devices.add_token("three", MIGRATION, 3, LATER)
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(lambda i: _enroll(store, "three", f"device-{i}", f"WS{i}"),
                             range(12)))
    assert sum(done) == 3
    assert len(store.devices.agents(MIGRATION)) == 3


def test_enrolling_a_computer_name_again_revokes_its_older_agent(location: str) -> None:
    store = StateStore(location)
    store.devices.add_token("wave", MIGRATION, None, LATER)
    assert _enroll(store, "wave", "device-old", "WS1")
    assert _enroll(store, "wave", "device-new", "WS1")
    old, new = store.devices.get("device-old"), store.devices.get("device-new")
    assert old is not None and old.revoked and new is not None and not new.revoked


def test_plans_are_replaced_per_migration_and_their_results_are_kept_once(location: str
                                                                         ) -> None:
    store = StateStore(location)
    store.devices.set_plans(MIGRATION, [_plan("WS1"), _plan("WS2")])
    assert [p.device for p in store.devices.plans(MIGRATION)] == ["WS1", "WS2"]
    (ws1, _) = store.devices.plans(MIGRATION)
    assert ws1 == _plan("WS1")  # actions, stage and cutover time round-trip
    store.devices.keep_secret(MIGRATION, "WS1", 1, "2-DomainJoin",
                              DeviceSecret({"kid": "ciphertext"}, "CN=WS1,OU=WS,DC=tgt"))
    assert store.devices.record_result(_result("WS1", "1-ReACL"))
    assert not store.devices.record_result(_result("WS1", "1-ReACL", ok=False))
    progress = store.devices.progress(MIGRATION, "WS1")
    assert progress.results["1-ReACL"].ok and progress.results["1-ReACL"].details == {
        "files": {"scanned": 3, "changed": 1}}
    assert progress.secrets == {"2-DomainJoin": DeviceSecret({"kid": "ciphertext"},
                                                             "CN=WS1,OU=WS,DC=tgt")}
    assert progress.sid_table_version is None
    assert store.devices.record_result(_result("WS1", "2-DomainJoin"))
    assert store.devices.progress(MIGRATION, "WS1").secrets == {}  # used: gone

    store.devices.keep_secret(MIGRATION, "WS2", 1, "2-DomainJoin", DeviceSecret({"k": "c"}, ""))
    store.devices.set_plans(MIGRATION, [_plan("WS2", generation=2)])
    assert [p.device for p in store.devices.plans(MIGRATION)] == ["WS2"]
    progress = store.devices.progress(MIGRATION, "WS2")
    assert progress.plan is not None and progress.plan.generation == 2
    assert progress.secrets == {} and progress.results == {}
    assert [(r.device, r.action_id) for r in store.devices.results(MIGRATION)] == [
        ("WS1", "1-ReACL"), ("WS1", "2-DomainJoin")]


def test_a_log_keeps_its_last_mebibyte_and_the_sid_table_its_version(location: str) -> None:
    store = StateStore(location)
    assert store.devices.logs_size(MIGRATION, "WS1") is None
    text = "é" + "x" * (1 << 20)
    assert store.devices.store_log(MIGRATION, "WS1", text) == 1 << 20
    assert store.devices.log(MIGRATION, "WS1") == "x" * (1 << 20)
    assert store.devices.store_log(MIGRATION, "WS1", "short") == 5
    assert store.devices.logs_size(MIGRATION, "WS1") == 5
    store.devices.set_sid_table(MIGRATION, "v2", {"S-1-5-21-1-2-3-1104": "S-1-5-21-4-5-6-1201"})
    table = store.devices.sid_table(MIGRATION)
    assert table is not None and table.version == "v2"
    assert store.devices.progress(MIGRATION, "WS9").sid_table_version == "v2"


def test_sid_translations_write_what_changed_and_report_conflicts(location: str) -> None:
    store = StateStore(location)
    first = {"a": ("user", "S-1-5-21-1-1104", "S-1-5-21-2-1201"),
             "b": ("group", "S-1-5-21-1-1105", "S-1-5-21-2-1202")}
    assert store.sid_translations.update("wf/src->tgt", first) == 2
    assert store.sid_translations.update("wf/src->tgt", first) == 0
    store.sid_translations.update("other/src->tgt2",
                                  {"a": ("user", "S-1-5-21-1-1104", "S-1-5-21-3-1301")})
    table, conflicts = store.sid_translations.table(["wf/src->tgt", "other/src->tgt2"])
    assert table == {"S-1-5-21-1-1105": "S-1-5-21-2-1202"}
    assert conflicts == {"S-1-5-21-1-1104": ("S-1-5-21-2-1201", "S-1-5-21-3-1301")}
    store.sid_translations.remove("wf/src->tgt", ["b"])
    assert store.sid_translations.table(["wf/src->tgt"]).entries == {
        "S-1-5-21-1-1104": "S-1-5-21-2-1201"}


def test_discovered_devices_are_updated_and_replaced(location: str) -> None:
    store = StateStore(location)
    store.discovered_devices.update("src", {"g1": ("ws1", "CN=WS1,DC=src", "Windows 11"),
                                            "g2": ("ws2", "CN=WS2,DC=src", "")})
    store.discovered_devices.update("src", {}, deleted=["g2"])
    assert [(d.name, d.dn) for d in store.discovered_devices.find("src")] == [
        ("WS1", "CN=WS1,DC=src")]
    store.discovered_devices.update("src", {"g3": ("WS3", "CN=WS3,DC=src", "")}, replace=True)
    assert [d.anchor for d in store.discovered_devices.find("src")] == ["g3"]
    assert store.discovered_devices.find("tgt") == []
