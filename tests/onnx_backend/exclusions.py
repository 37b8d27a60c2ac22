"""Node conformance cases engine does not pass, each with its reason. Exact case names, or prefixes ending in
"*". Keep the reasons honest and specific: this list is the answer to "what does engine not support"."""
from __future__ import annotations

EXCLUSIONS: dict[str, str] = {
}


def reason_for(name: str) -> str | None:
    r = EXCLUSIONS.get(name)
    if r is not None:
        return r
    for pat, why in EXCLUSIONS.items():
        if pat.endswith("*") and name.startswith(pat[:-1]):
            return why
    return None
