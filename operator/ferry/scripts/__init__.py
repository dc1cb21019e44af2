"""runScript steps: where each runs in a run, what it is given, and the hosts that run it."""
