"""Connection arguments for the SQLite metadata database of `make up`'s Airflow.

The api-server, scheduler, DAG processor and triggerer write to one SQLite file. SQLite lets one
writer in at a time and Python's driver waits 5 s for the lock by default: on a loaded machine the
UI's "Trigger" (create the run and unpause the DAG, two requests at once) had its unpause fail with
"database is locked" (HTTP 500), and the run stayed queued behind a paused DAG. Airflow imports
this dict (`[database] sql_alchemy_connect_args`, set by `Stack.airflow_env` for SQLite only).
"""

CONNECT_ARGS = {"timeout": 60}
"""Seconds a connection waits for SQLite's write lock before 'database is locked'."""
ASYNC_CONNECT_ARGS = {"timeout": 60}
"""The same for the async engine (aiosqlite passes it to sqlite3); a dict of its own, as Airflow
adds its SQLite settings to the dict it imports."""
