"""trade ids never reused (issue 16: the live ledger reserves trade ids before an entry is sent)

The live engine journals an entry's rows and sends it before they reach the database (trader/live/ledger.py), so
the trade id its client order id carries must be reserved beforehand and never handed to another row: a backtest
storing trades meanwhile included. PostgreSQL's serial sequence already works that way. A SQLite table hands out
max(id) + 1 unless it is declared AUTOINCREMENT, which keeps the highest id ever given (or reserved) in
``sqlite_sequence``; declaring it means rebuilding the table.

The rebuild drops the old table, and with foreign keys enforced that drop deletes its rows first, which the orders,
fills, executions and funding payments that point at them refuse. Enforcement can only be switched off outside a
transaction, so the migration commits what ran before it, rebuilds with enforcement off, checks every foreign key
(``PRAGMA foreign_key_check``) before committing, and switches enforcement back on for the connection.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 15:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _rebuild_trades(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    dbapi = bind.connection.driver_connection
    if dbapi.in_transaction:
        dbapi.commit()
    dbapi.execute("PRAGMA foreign_keys=OFF")
    try:
        with op.batch_alter_table('trades', recreate='always',
                                  table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass
        broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            dbapi.rollback()
            raise RuntimeError(f"rebuilding trades would break {len(broken)} foreign key(s): {broken[:5]}")
        dbapi.commit()
    finally:
        dbapi.execute("PRAGMA foreign_keys=ON")


def upgrade() -> None:
    """Upgrade schema."""
    _rebuild_trades(True)


def downgrade() -> None:
    """Downgrade schema."""
    _rebuild_trades(False)
