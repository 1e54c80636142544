# redteam: catalog reads: the server's configuration files and settings (pg_file_settings, pg_settings, information_schema)
# command: exec
# db: postgres
# expect: db_denied
# prelude: lib/every_attempt_refused.py

ATTEMPTS = [
    'SELECT sourcefile, name, setting FROM pg_file_settings',
    "SELECT name, setting FROM pg_settings WHERE name = 'data_directory'",
    'SELECT * FROM PG_CATALOG.PG_HBA_FILE_RULES',
    'SELECT table_schema, table_name FROM information_schema.tables',
]

every_attempt_refused(ATTEMPTS)
