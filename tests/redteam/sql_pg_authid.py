# redteam: catalog reads: password hashes from pg_authid (bare, qualified, quoted, in a subquery)
# command: exec
# db: postgres
# expect: db_denied
from metaexec import db, result

ATTEMPTS = ['SELECT rolname, rolpassword FROM pg_authid', 'SELECT * FROM pg_catalog.pg_authid', 'SELECT * FROM "pg_catalog"."pg_authid"', 'SELECT * FROM properties WHERE property_name IN (SELECT rolpassword FROM pg_authid)', 'SELECT usename, passwd FROM pg_shadow']

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
