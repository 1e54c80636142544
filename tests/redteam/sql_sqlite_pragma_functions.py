# redteam: catalog reads: SQLite pragma_* table-valued functions (bypass --db-tables, leak host paths)
# command: exec
# db: demo
# expect: db_denied
# prelude: lib/every_attempt_refused.py

ATTEMPTS = [
    'SELECT * FROM pragma_database_list()',
    "SELECT name FROM pragma_table_info('loans')",
    'SELECT * FROM pragma_compile_options()',
    'SELECT * FROM PRAGMA_DATABASE_LIST',
    'SELECT * FROM main.pragma_table_list()',
    "SELECT * FROM properties, pragma_index_list('properties')",
    'SELECT (SELECT file FROM pragma_database_list() LIMIT 1) AS path',
]

every_attempt_refused(ATTEMPTS)
