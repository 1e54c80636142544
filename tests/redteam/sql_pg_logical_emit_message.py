# redteam: SQL side effects: write to the WAL from a read-only transaction with pg_logical_emit_message
# command: exec
# db: postgres
# expect: db_denied
from metaexec import db, result

ATTEMPTS = ["SELECT pg_logical_emit_message(false, 'metaexec', repeat('x', 1000000))", "SELECT * FROM pg_logical_emit_message(true, 'metaexec', 'x')", "SELECT 1 ORDER BY pg_logical_emit_message(false, 'metaexec', 'x')"]

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
