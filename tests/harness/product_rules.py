"""Product rules the tests restate on their own, from Immuta's documentation, so that a change
to the provider's copy is caught rather than followed."""

# "Register a PostgreSQL Connection": words a connection's display name may not contain.
RESTRICTED_WORDS = (
    "data",
    "connection",
    "object",
    "crawl",
    "search",
    "settings",
    "metadata",
    "permission",
    "sync",
    "bulk",
    "upgrade",
)
