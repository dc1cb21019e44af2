"""Engine benchmark: match + stage + diff of N synthetic directory objects.

    python bench/engine_bench.py [N ...]      (default: 100000 1000000)

Each N runs in a fresh process so peak RSS is its own. Sources and targets are generated
lazily, the way a connector streams them; the time spent generating them is measured and
left out of the engine seconds (wall and CPU), while peak memory includes everything
(joins, records, plan). Each N runs twice: with Python's cyclic garbage collector as it is,
and with it paused around plan_pair (gc.freeze + gc.disable), which a sync job can do since
the engine makes no reference cycles; the difference is the collector's share.

World: ~98% users (14 attributes incl. 3 proxyAddresses, a manager) and ~2% groups of 50
members. Half the objects are already joined (1 in 20 of those with one attribute changed),
a quarter match an existing target by mail, a quarter are new. Template: 11 direct mappings,
one CEL expression (displayName), domain mapping contoso.com -> fabrikam.com, an OU mapping;
the pair is scoped to the source OU (every object's DN is checked against it).
"""

from __future__ import annotations

import gc
import itertools
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator

from ferry.engine.expressions import compile_template
from ferry.engine.pipeline import plan_pair
from ferry.engine.records import AttributeValue, ObjectType, Record
from ferry.engine.rules import (
    AttributeMapping,
    DomainMapping,
    MatchRule,
    OuMapping,
    PairRules,
    StagingRules,
)

GROUP_EVERY = 50        # one object in 50 is a group
MEMBERS = 50            # members per group
SRC_BASE = "OU=Staff,DC=contoso,DC=com"
TGT_OU = "OU=Migrated,DC=fabrikam,DC=com"
DEPARTMENTS = ("Sales", "Finance", "Engineering", "Support", "Legal", "Marketing", "HR", "Ops")
TITLES = ("Associate", "Analyst", "Engineer", "Manager", "Director", "Consultant")
FIRST = ("Ann", "Bob", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Ines", "João")
LAST = ("Lee", "Smith", "Müller", "O'Brien", "García", "Nakamura", "Okafor", "Kowalski")

U = AttributeMapping
USERS = frozenset({ObjectType.USER})
GROUPS = frozenset({ObjectType.GROUP})


def rules() -> PairRules:
    staging = StagingRules(
        "bench-users",
        (
            U("cn", "source.cn"),
            U("givenName", "source.givenName", object_types=USERS),
            U("sn", "source.sn", object_types=USERS),
            U("displayName", "source.givenName + ' ' + source.sn", object_types=USERS),
            U("mail", "source.mail"),
            U("userPrincipalName", "source.userPrincipalName", object_types=USERS),
            U("employeeID", "source.employeeID", object_types=USERS),
            U("department", "source.department", object_types=USERS),
            U("title", "source.title", object_types=USERS),
            U("telephoneNumber", "source.telephoneNumber", object_types=USERS),
            U("company", "source.company", object_types=USERS),
            U("proxyAddresses", "source.proxyAddresses"),
            U("description", "source.description", object_types=GROUPS),
        ),
        domain_mappings=(DomainMapping("contoso.com", "fabrikam.com"),),
        default_target_ou=TGT_OU,
        ou_mappings=(OuMapping("OU=Sales,OU=Staff,DC=contoso,DC=com",
                               "OU=Sales,OU=Migrated,DC=fabrikam,DC=com"),),
    )
    return PairRules("bench/contoso->fabrikam", staging,
                     (MatchRule("mail", "mail"), MatchRule("employeeID", "employeeID")),
                     delete_threshold=1_000_000, source_ous=(SRC_BASE,))


def anchor(i: int) -> str:
    return f"{i:08x}-5e1f-4c2b-9d3a-{i * 2654435761 % 2**48:012x}"


def target_anchor(i: int) -> str:
    return f"{i:08x}-7a7a-4000-8000-{i * 40503 % 2**48:012x}"


def kind(i: int) -> str:
    """joined (half), matchable by mail (a quarter), new (a quarter)."""
    return ("joined", "joined", "matchable", "new")[i % 4]


def is_group(i: int) -> bool:
    return i % GROUP_EVERY == GROUP_EVERY - 1


def _user_values(i: int) -> dict[str, AttributeValue]:
    first, last = FIRST[i % len(FIRST)], LAST[i // 7 % len(LAST)]
    login = f"{first.lower()[:3]}{last.lower()[:4]}{i}"
    department = DEPARTMENTS[i // 11 % len(DEPARTMENTS)]
    return {
        "cn": f"{first} {last} {i}",
        "givenName": first + "",
        "sn": last + "",
        "mail": f"{login}@contoso.com",
        "userPrincipalName": f"{login}@contoso.com",
        "sAMAccountName": login,
        "employeeID": f"E{i:07d}",
        "department": department + "",  # fresh strings, as a connector would decode them
        "title": TITLES[i // 13 % len(TITLES)] + "",
        "telephoneNumber": f"+1 555 {i % 10_000_000:07d}",
        "company": "Contoso Ltd" + "",
        "proxyAddresses": (f"SMTP:{login}@contoso.com", f"smtp:{first.lower()}.{i}@contoso.com",
                           f"X500:/o=Contoso/ou=Exchange/cn=Recipients/cn={login}"),
    }


def _source_dn(i: int, cn: str) -> str:
    department = DEPARTMENTS[i // 11 % len(DEPARTMENTS)]
    return f"CN={cn},OU={department},{SRC_BASE}"


def manager_of(i: int) -> int | None:
    boss = i - i % 10
    return None if boss == i or is_group(boss) else boss


def sources(n: int) -> Iterator[Record]:
    """The source read: every object, generated on demand."""
    for i in range(n):
        if is_group(i):
            cn = f"Team {i}"
            members = tuple(anchor((i + 1 + k * 7) % n) for k in range(MEMBERS)
                            if not is_group((i + 1 + k * 7) % n))
            yield Record(anchor(i), ObjectType.GROUP, _source_dn(i, cn),
                         {"cn": cn, "mail": f"team{i}@contoso.com",
                          "description": f"Team {i} of {DEPARTMENTS[i % 8]}",
                          "proxyAddresses": (f"SMTP:team{i}@contoso.com",)},
                         {"member": members})
            continue
        values = _user_values(i)
        boss = manager_of(i)
        refs = {"manager": (anchor(boss),)} if boss is not None else {}
        yield Record(anchor(i), ObjectType.USER, _source_dn(i, str(values["cn"])), values, refs,
                     i % 17 != 0)


def _target_ou(i: int) -> str:
    """Where the template's OU mapping puts object i (see _source_dn)."""
    sales = DEPARTMENTS[i // 11 % len(DEPARTMENTS)] == "Sales"
    return "OU=Sales,OU=Migrated,DC=fabrikam,DC=com" if sales else TGT_OU


def _mapped(address: str) -> str:
    return address.replace("@contoso.com", "@fabrikam.com")


def targets(n: int) -> Iterator[Record]:
    """The target read: joined objects (mostly in sync) and objects matchable by mail."""
    for i in range(n):
        state = kind(i)
        if state == "new":
            continue
        if is_group(i):
            cn = f"Team {i}"
            members = tuple(target_anchor(m) for k in range(MEMBERS)
                            if kind(m := (i + 1 + k * 7) % n) == "joined" and not is_group(m))
            mail = f"team{i}@contoso.com"
            attrs: dict[str, AttributeValue] = {
                "cn": cn, "description": f"Team {i} of {DEPARTMENTS[i % 8]}",
                "mail": _mapped(mail) if state == "joined" else mail,
                "proxyAddresses": (f"SMTP:team{i}@fabrikam.com",),
            }
            yield Record(target_anchor(i), ObjectType.GROUP, f"CN={cn},{_target_ou(i)}", attrs,
                         {"member": members} if state == "joined" else {})
            continue
        values = _user_values(i)
        if state == "matchable":
            # Pre-created by hand long ago: same mail, few attributes.
            yield Record(target_anchor(i), ObjectType.USER, f"CN={values['cn']},OU=Old,{TGT_OU}",
                         {"cn": values["cn"], "mail": values["mail"]}, {}, True)
            continue
        attrs = dict(values)
        del attrs["sAMAccountName"]  # not mapped: the template does not manage it
        attrs["displayName"] = f"{values['givenName']} {values['sn']}"
        for name in ("mail", "userPrincipalName"):
            attrs[name] = _mapped(str(values[name]))
        attrs["proxyAddresses"] = tuple(_mapped(p) for p in values["proxyAddresses"])
        if i % 40 == 1:
            attrs["title"] = "Changed"  # one attribute differs: one UPDATE
        ou = _target_ou(i)
        boss = manager_of(i)
        refs = ({"manager": (target_anchor(boss),)}
                if boss is not None and kind(boss) == "joined" else {})
        yield Record(target_anchor(i), ObjectType.USER, f"CN={values['cn']},{ou}", attrs, refs,
                     i % 17 != 0)


def joins(n: int) -> dict[str, str]:
    return {anchor(i): target_anchor(i) for i in range(n) if kind(i) == "joined"}


class Timed(Iterable[Record]):
    """Wraps a generator and adds the wall and CPU time spent producing its items.

    Items are produced in small batches, so timing them costs next to nothing per item.
    """

    BATCH = 1000

    def __init__(self, items: Iterator[Record]) -> None:
        self.items = items
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.count = 0

    def __iter__(self) -> Iterator[Record]:
        wall, cpu = time.perf_counter, time.process_time
        while True:
            start, start_cpu = wall(), cpu()
            batch = list(itertools.islice(self.items, self.BATCH))
            self.seconds += wall() - start
            self.cpu_seconds += cpu() - start_cpu
            if not batch:
                return
            self.count += len(batch)
            yield from batch


def run_one(n: int, gc_paused: bool) -> dict[str, object]:
    pair = rules()
    compiled = compile_template(pair.staging)
    join_map = joins(n)
    source_iter, target_iter = Timed(sources(n)), Timed(targets(n))
    if gc_paused:
        gc.freeze()
        gc.disable()
    start, start_cpu = time.perf_counter(), time.process_time()
    plan = plan_pair(pair, source_iter, target_iter, join_map, compiled=compiled)
    elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    gc.enable()
    generation = source_iter.seconds + target_iter.seconds
    generation_cpu = source_iter.cpu_seconds + target_iter.cpu_seconds
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kinds = Counter(op.kind.value for op in plan.operations)
    return {
        "n": n, "sources": source_iter.count, "targets": target_iter.count,
        "joins": len(join_map), "gc": "paused" if gc_paused else "default",
        "engine_s": round(elapsed - generation, 2),
        "engine_cpu_s": round(elapsed_cpu - generation_cpu, 2),
        "generation_s": round(generation, 2), "peak_mb": round(peak_mb),
        "ops": dict(kinds), "new_joins": len(plan.new_joins),
        "conflicts": len(plan.conflicts), "errors": len(plan.errors),
        "deferred": len(plan.deferred), "unchanged": sum(plan.unchanged.values()),
    }


MILLION_LIMIT_MB = 2048


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        print(json.dumps(run_one(int(argv[1]), argv[2:3] == ["--gc-paused"])))
        return
    sizes = [int(arg) for arg in argv] or [100_000, 1_000_000]
    rows = []
    for n in sizes:
        for mode in ([], ["--gc-paused"]):
            done = subprocess.run([sys.executable, __file__, "--one", str(n), *mode], check=True,
                                  capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'objects':>9} {'targets':>8} {'gc':>8} {'engine s':>9} {'cpu s':>7} {'gen s':>6} "
          f"{'peak MB':>8} {'create':>7} {'update':>7} {'move':>6} {'refs':>7} "
          f"{'unchanged':>9} {'conflicts':>9}")
    for row in rows:
        ops = row["ops"]
        assert isinstance(ops, dict)
        print(f"{row['n']:>9} {row['targets']:>8} {row['gc']:>8} {row['engine_s']:>9} "
              f"{row['engine_cpu_s']:>7} {row['generation_s']:>6} {row['peak_mb']:>8} "
              f"{ops.get('create', 0):>7} {ops.get('update', 0):>7} {ops.get('move', 0):>6} "
              f"{ops.get('references', 0):>7} {row['unchanged']:>9} {row['conflicts']:>9}")
    # The memory limit: a 1,000,000-object plan under 2 GB (the worse of both gc modes).
    million = [row for row in rows if row["n"] == 1_000_000]
    if million:
        peak = max(int(str(row["peak_mb"])) for row in million)
        verdict = "ok" if peak <= MILLION_LIMIT_MB else "OVER"
        print(f"1,000,000-object plan peak memory {peak} MB   limit {MILLION_LIMIT_MB} MB"
              f"   {verdict}")


if __name__ == "__main__":
    main(sys.argv[1:])
