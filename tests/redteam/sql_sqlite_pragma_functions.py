# redteam: catalog reads: SQLite pragma_* table-valued functions (bypass --db-tables, leak host paths)
# command: exec
# db: demo
# expect: db_denied
from metaexec import db, result

ATTEMPTS = ['SELECT * FROM pragma_database_list()', "SELECT name FROM pragma_table_info('loans')", 'SELECT * FROM pragma_compile_options()', 'SELECT * FROM PRAGMA_DATABASE_LIST', 'SELECT * FROM main.pragma_table_list()', "SELECT * FROM properties, pragma_index_list('properties')", 'SELECT (SELECT file FROM pragma_database_list() LIMIT 1) AS path']

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
