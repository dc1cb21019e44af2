"""Generated passwords that always satisfy Active Directory's default complexity rules."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable

# No quotes, backslash, backtick or space: the password survives config files and shells.
SYMBOLS = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, SYMBOLS)
_ALPHABET = "".join(_CLASSES)


def generate_password(length: int = 24, avoid: Iterable[str] = ()) -> str:
    """A random password with upper, lower, digit and symbol characters.

    AD also rejects passwords containing the sAMAccountName or any 3+ character token of the
    displayName (case-insensitive); pass those in `avoid` to make that certain, not just likely.
    Candidates are drawn uniformly and rejected until every rule holds.
    """
    if length < 8:
        raise ValueError("password length must be at least 8")
    tokens = [token.casefold() for token in avoid if len(token) >= 3]
    while True:
        candidate = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        if not all(any(char in cls for char in candidate) for cls in _CLASSES):
            continue
        folded = candidate.casefold()
        if any(token in folded for token in tokens):
            continue
        return candidate


def complexity_tokens(sam_account_name: str = "", display_name: str = "") -> list[str]:
    """The tokens AD checks a password against: the account name and displayName parts."""
    tokens = [sam_account_name] if len(sam_account_name) >= 3 else []
    separators = ",.-_ #\t"
    part = ""
    for char in display_name:
        if char in separators:
            if len(part) >= 3:
                tokens.append(part)
            part = ""
        else:
            part += char
    if len(part) >= 3:
        tokens.append(part)
    return tokens
