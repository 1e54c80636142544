# redteam: SQL side effects: reset the server's statistics (pg_stat_reset and friends)
# command: exec
# db: postgres
# expect: db_denied
# prelude: lib/every_attempt_refused.py

ATTEMPTS = [
    'SELECT pg_stat_reset()',
    "SELECT pg_catalog.pg_stat_reset_shared('bgwriter')",
    'SELECT "pg_stat_reset"()',
    'SELECT count(*) FROM loans GROUP BY pg_stat_reset()',
    'SELECT pg_log_backend_memory_contexts(pg_backend_pid())',
]

every_attempt_refused(ATTEMPTS)
