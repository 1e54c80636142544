# redteam: catalog reads: SQLite's schema tables (sqlite_master, sqlite_schema, temp, sequence, stats, dbstat)
# command: exec
# db: demo
# expect: db_denied
from metaexec import db, result

ATTEMPTS = ['SELECT sql FROM sqlite_master', 'SELECT * FROM sqlite_schema', 'SELECT * FROM "main"."SQLITE_MASTER"', 'SELECT * FROM sqlite_temp_master', 'SELECT * FROM sqlite_sequence', 'SELECT * FROM sqlite_stat1', 'SELECT * FROM dbstat', 'WITH t AS (SELECT name FROM sqlite_master) SELECT * FROM t']

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
