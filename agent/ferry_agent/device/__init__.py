"""The device agent: one per workstation, moving it between domains (see docs/design.md)."""
