"""executions and fill slippage (issue 15: the execution optimiser's records, read by /execution)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 18:55:56.955318

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('executions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trade_id', sa.Integer(), nullable=True),
    sa.Column('pair', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('style', sa.String(length=12), nullable=False),
    sa.Column('slices', sa.Integer(), nullable=False),
    sa.Column('planned', sa.String(length=48), nullable=True),
    sa.Column('filled', sa.String(length=48), nullable=False),
    sa.Column('decision_price', sa.String(length=48), nullable=True),
    sa.Column('average', sa.String(length=48), nullable=False),
    sa.Column('slippage_bp', sa.Float(), nullable=True),
    sa.Column('maker_share', sa.Float(), nullable=False),
    sa.Column('time_to_fill_ms', sa.Integer(), nullable=True),
    sa.Column('fallback', sa.Boolean(), nullable=False),
    sa.Column('client_order_ids', sa.JSON(), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['trade_id'], ['trades.id'], name=op.f('fk_executions_trade_id_trades')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_executions'))
    )
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_executions_pair'), ['pair'], unique=False)
        batch_op.create_index(batch_op.f('ix_executions_time'), ['time'], unique=False)
        batch_op.create_index(batch_op.f('ix_executions_trade_id'), ['trade_id'], unique=False)

    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slippage_bp', sa.Float(), nullable=True))



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_column('slippage_bp')

    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_executions_trade_id'))
        batch_op.drop_index(batch_op.f('ix_executions_time'))
        batch_op.drop_index(batch_op.f('ix_executions_pair'))

    op.drop_table('executions')
