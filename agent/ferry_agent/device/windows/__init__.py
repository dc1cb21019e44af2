"""The device agent's Windows backend, by contract: typed requests, Win32 calls through ctypes
with their documented prototypes, a few generated PowerShell and system command lines.
Importable on any OS; the DLLs are bound only when an action runs."""

from .backend import WindowsBackend, WindowsSettings

__all__ = ["WindowsBackend", "WindowsSettings"]
