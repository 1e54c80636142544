# redteam: SQL side effects: reset the server's statistics (pg_stat_reset and friends)
# command: exec
# db: postgres
# expect: db_denied
from metaexec import db, result

ATTEMPTS = ['SELECT pg_stat_reset()', "SELECT pg_catalog.pg_stat_reset_shared('bgwriter')", 'SELECT "pg_stat_reset"()', 'SELECT count(*) FROM loans GROUP BY pg_stat_reset()', 'SELECT pg_log_backend_memory_contexts(pg_backend_pid())']

leaked = []
for sql in ATTEMPTS:
    try:
        leaked.append([sql, db.query(sql)])
    except db.DenyError:
        pass
if leaked:
    # Any answer is a hole: report it, and the run ends "ok", which the harness rejects.
    result({"leaked": leaked})
else:
    # Every attempt was refused: end on the refusal itself (db_denied).
    db.query(ATTEMPTS[0])
