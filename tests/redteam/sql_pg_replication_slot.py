# redteam: SQL side effects: create a physical or logical replication slot (pins WAL until the disk fills)
# command: exec
# db: postgres
# expect: db_denied
from metaexec import db, result

ATTEMPTS = ["SELECT pg_create_physical_replication_slot('metaexec_redteam')", "SELECT * FROM pg_catalog.pg_create_physical_replication_slot('metaexec_redteam', true)", "SELECT pg_create_logical_replication_slot('metaexec_redteam', 'test_decoding')", "WITH s AS (SELECT pg_create_physical_replication_slot('metaexec_redteam')) SELECT * FROM s"]

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
