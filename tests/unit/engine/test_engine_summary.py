"""plan_summary: the per-type counts a run reports."""

from __future__ import annotations

from engine_world import FakeTarget, group, pair, staging, user

from ferry.api.status import RunCounts
from ferry.engine.pipeline import plan_pair, plan_summary
from ferry.engine.plan import Count
from ferry.engine.records import ObjectType
from ferry.engine.rules import AttributeMapping
from ferry.sync.outcome import RunOutcome

RULES = pair(staging(AttributeMapping("cn", "source.cn"), AttributeMapping("mail", "source.mail"),
                     AttributeMapping("title", "source.title")))


def test_summary_counts_each_object_once_per_outcome() -> None:
    sources = [user("s1", "Ann", mail="ann@x.test"), user("s2", "Bob", mail="bob@x.test"),
               user("s3", "Carl", mail="carl@x.test"), group("g1", "Team", "s1")]
    world = FakeTarget()
    world.apply(plan_pair(RULES, sources, [], {}))

    sources[0] = user("s1", "Ann", mail="ann@x.test", title="Lead")     # updated
    sources[1] = user("s2", "Bob", mail="bob@x.test", ou="OU=Other,DC=src,DC=test")  # unchanged
    sources[2] = user("s3", "Carl Renamed", mail="carl@x.test")         # moved
    sources[3] = group("g1", "Team", "s1", "s4", "ghost")  # members: deferred, out of scope
    sources += [user("s4", "Dana", mail="dup@x.test"), user("s5", "Eve", mail="dup@x.test"),
                user("s6", "Finn", mail="finn@x.test")]                   # conflicts, created
    summary = plan_summary(plan_pair(RULES, sources, world.records, world.joins))

    users, groups = summary[ObjectType.USER], summary[ObjectType.GROUP]
    assert (users["created"], users["updated"], users["moved"], users["unchanged"],
            users["conflicts"]) == (1, 1, 1, 1, 2)
    assert (groups["updated"], groups["deferred"], groups["outOfScope"], groups["created"]) \
        == (0, 1, 1, 0)
    assert set(users) == {"created", "updated", "moved", "deleted", "unchanged", "conflicts",
                          "errors", "deferred", "outOfScope", "sidHistory", "passwords",
                          "newConflicts"}


def test_every_count_form_counts_the_same_things() -> None:
    # Plans, run outcomes (state store, CLI) and Workflow status all follow Count.
    assert [f.alias or n for n, f in RunCounts.model_fields.items()] == list(Count)
    summary = plan_summary(plan_pair(RULES, [user("s1", "Ann")], [], {}))
    assert tuple(summary[ObjectType.USER]) == tuple(Count)
    assert tuple(RunOutcome("r", "w", "full", {"user": summary[ObjectType.USER]})
                 .counts_as_dict()["user"]) == tuple(Count)
