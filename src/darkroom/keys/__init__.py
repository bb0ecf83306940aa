"""API keys and what they may spend: the records and their store (`store`), and the balance
that task creation charges and a failed or canceled task gives back (`balance`)."""

from darkroom.keys.limits import NO_LIMITS, Limits
from darkroom.keys.store import KEY_PREFIX, ApiKey, KeyStore, TopUpRefused, hash_key

__all__ = [
    "KEY_PREFIX",
    "NO_LIMITS",
    "ApiKey",
    "KeyStore",
    "Limits",
    "TopUpRefused",
    "hash_key",
]
