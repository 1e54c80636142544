# redteam: SQL side effects: write to the WAL from a read-only transaction with pg_logical_emit_message
# command: exec
# db: postgres
# expect: db_denied
# prelude: lib/every_attempt_refused.py

ATTEMPTS = [
    "SELECT pg_logical_emit_message(false, 'metaexec', repeat('x', 1000000))",
    "SELECT * FROM pg_logical_emit_message(true, 'metaexec', 'x')",
    "SELECT 1 ORDER BY pg_logical_emit_message(false, 'metaexec', 'x')",
]

every_attempt_refused(ATTEMPTS)
