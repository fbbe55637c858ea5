"""Store backends beside the embedded file store (mailesc.store).

``mailesc.stores.postgres`` keeps the same records in PostgreSQL, so that several workers on several machines
can share them. psycopg is imported only there: the embedded store needs none of it
(``pip install 'mailesc[postgresql]'``)."""
