"""funding payment rate may be unknown

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('funding_payments', schema=None) as batch_op:
        batch_op.alter_column('rate',
               existing_type=sa.VARCHAR(length=48),
               nullable=True)



def downgrade() -> None:
    """Downgrade schema (fails while rows with an unknown rate exist: delete or fill them first)."""
    with op.batch_alter_table('funding_payments', schema=None) as batch_op:
        batch_op.alter_column('rate',
               existing_type=sa.VARCHAR(length=48),
               nullable=False)

