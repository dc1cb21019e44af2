"""The one root of the agent's errors (the agent has its own: it never imports ferry)."""

from __future__ import annotations


class FerryAgentError(Exception):
    """An error the agent raises on purpose; the message says what failed and, where it can,
    what to do. (Not "AgentError": that is the protocol's name for an agent-side failure.)"""
