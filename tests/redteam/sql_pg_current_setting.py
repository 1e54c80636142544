# redteam: settings reads: the data directory and config paths through current_setting and friends
# command: exec
# db: postgres
# expect: db_denied
# prelude: lib/every_attempt_refused.py

ATTEMPTS = [
    "SELECT current_setting('data_directory')",
    "SELECT pg_catalog.current_setting('config_file')",
    "SELECT property_name FROM properties ORDER BY current_setting('hba_file')",
    'SELECT version(), inet_server_addr(), current_user',
]

every_attempt_refused(ATTEMPTS)
