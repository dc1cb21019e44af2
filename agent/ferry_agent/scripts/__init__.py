"""Script steps an agent runs: the process, and which programs its INI allows."""
