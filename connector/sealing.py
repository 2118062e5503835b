"""Tokens at rest: sealed with a key from settings, so a copied state file gives no access to a portal.

`STATE_KEY` holds one or more Fernet keys, comma-separated: the first seals, every one opens
(that is how a key is rotated: put the new key first, run `repeat-sales state rotate-key`, then drop
the old one). Without STATE_KEY the single-portal CLI keeps its tokens as before, readable by the file's
owner only (the file is created 0600); a value sealed earlier is never read back without its key.
Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) because it is authenticated and versioned:
a wrong key or a changed byte is refused, never decrypted into garbage.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from connector.errors import SettingsError, StateError

PREFIX = "sealed:v1:"  # marks a sealed value, so a file written before STATE_KEY was set still reads
NEW_KEY_HINT = "make one with `repeat-sales state new-key` and set STATE_KEY=<that key>"


def parse_keys(text: str | None) -> list[Fernet]:
    """STATE_KEY's keys, first the one that seals; a malformed key is refused naming its place."""
    keys = []
    for n, part in enumerate((text or "").split(","), start=1):
        part = part.strip()
        if not part:
            continue
        try:
            keys.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise SettingsError("STATE_KEY", f"key {n} is not a Fernet key (32 bytes, url-safe base64)",
                              hint=NEW_KEY_HINT) from None
    return keys


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


class Sealer:
    """Seals and opens token values; with no key it passes plain text through and refuses sealed text."""

    def __init__(self, keys: str | None = None) -> None:
        fernets = parse_keys(keys)
        self._multi = MultiFernet(fernets) if fernets else None

    @property
    def sealing(self) -> bool:
        return self._multi is not None

    def seal(self, text: str) -> str:
        if self._multi is None:
            return text
        return PREFIX + self._multi.encrypt(text.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # kept before STATE_KEY was set: read as is, sealed on its next write
        if self._multi is None:
            raise StateError("the tokens in the state file are sealed and STATE_KEY is not set",
                             hint="set STATE_KEY to the key(s) they were sealed with")
        try:
            return self._multi.decrypt(stored[len(PREFIX):].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise StateError("STATE_KEY does not open the tokens in the state file",
                             hint="put the key they were sealed with into STATE_KEY (new key first, old keys "
                                  "after it, comma-separated), then run `repeat-sales state rotate-key`") from None

    def reseal(self, stored: str) -> str:
        """The value sealed with the first key (plain values get sealed too), for key rotation."""
        return self.seal(self.open(stored))
