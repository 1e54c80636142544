# redteam: settings reads: the data directory and config paths through current_setting and friends
# command: exec
# db: postgres
# expect: db_denied
from metaexec import db, result

ATTEMPTS = ["SELECT current_setting('data_directory')", "SELECT pg_catalog.current_setting('config_file')", "SELECT property_name FROM properties ORDER BY current_setting('hba_file')", 'SELECT version(), inet_server_addr(), current_user']

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
