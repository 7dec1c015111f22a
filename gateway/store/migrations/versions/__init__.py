"""Alembic migrations, one file per schema change, file names numbered in chain order.

The number in a file name is the file's place in the chain (0001 first); the ``revision``
string inside is the id an installed database records in its ``alembic_version`` table.
Files 0002-0004 were renamed into chain order after databases had been installed, so their
ids differ from their names: 0002_agents.py is revision '0003', 0003_outbox.py is '0002',
0004_solution_clock.py is '0005'. Never change those ids: a database at '0002' would then
look like it lacks the outbox tables and run that migration again.

A new migration takes the next file number (0005_<what>.py), ``down_revision`` = the id of
the current head, and a fresh id that is not a bare number (a random hex id, as ``alembic
revision`` generates), so no id can be mistaken for a file number.
``tests/test_store_schema.py`` checks the order, the single head and that the migrations
build exactly the tables in ``gateway.store.models``.
"""
