# redteam: catalog reads: the server's configuration files and settings (pg_file_settings, pg_settings, information_schema)
# command: exec
# db: postgres
# expect: db_denied
from metaexec import db, result

ATTEMPTS = ['SELECT sourcefile, name, setting FROM pg_file_settings', "SELECT name, setting FROM pg_settings WHERE name = 'data_directory'", 'SELECT * FROM PG_CATALOG.PG_HBA_FILE_RULES', 'SELECT table_schema, table_name FROM information_schema.tables']

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
