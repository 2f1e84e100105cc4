"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('arguments', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_time', ['time'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_user_id'), ['user_id'], unique=False)

    op.create_table('backtest_runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('pairs', sa.JSON(), nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('timerange', sa.String(length=40), nullable=False),
    sa.Column('leverage', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('result_dir', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backtest_runs'))
    )
    op.create_table('runtime_state',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_runtime_state'))
    )
    op.create_table('trades',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=5), nullable=False),
    sa.Column('leverage', sa.Integer(), nullable=False),
    sa.Column('amount', sa.String(length=48), nullable=False),
    sa.Column('amount_open', sa.String(length=48), nullable=False),
    sa.Column('stake', sa.String(length=48), nullable=False),
    sa.Column('open_rate', sa.String(length=48), nullable=False),
    sa.Column('close_rate', sa.String(length=48), nullable=True),
    sa.Column('stop_price', sa.String(length=48), nullable=True),
    sa.Column('fees', sa.String(length=48), nullable=False),
    sa.Column('funding', sa.String(length=48), nullable=False),
    sa.Column('realized_pnl', sa.String(length=48), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('enter_tag', sa.String(length=64), nullable=False),
    sa.Column('exit_reason', sa.String(length=64), nullable=True),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('open_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('close_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('backtest_run_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['backtest_run_id'], ['backtest_runs.id'], name=op.f('fk_trades_backtest_run_id_backtest_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trades'))
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trades_backtest_run_id'), ['backtest_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_trades_pair'), ['pair'], unique=False)
        batch_op.create_index(batch_op.f('ix_trades_status'), ['status'], unique=False)

    op.create_table('funding_payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trade_id', sa.Integer(), nullable=True),
    sa.Column('pair', sa.String(length=32), nullable=False),
    sa.Column('rate', sa.String(length=48), nullable=False),
    sa.Column('amount', sa.String(length=48), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['trade_id'], ['trades.id'], name=op.f('fk_funding_payments_trade_id_trades')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_funding_payments')),
    sa.UniqueConstraint('pair', 'time', name=op.f('uq_funding_payments_pair'))
    )
    with op.batch_alter_table('funding_payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_funding_payments_trade_id'), ['trade_id'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trade_id', sa.Integer(), nullable=True),
    sa.Column('client_order_id', sa.String(length=36), nullable=False),
    sa.Column('exchange_order_id', sa.String(length=32), nullable=True),
    sa.Column('pair', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('reduce_only', sa.Boolean(), nullable=False),
    sa.Column('close_position', sa.Boolean(), nullable=False),
    sa.Column('amount', sa.String(length=48), nullable=True),
    sa.Column('price', sa.String(length=48), nullable=True),
    sa.Column('stop_price', sa.String(length=48), nullable=True),
    sa.Column('filled', sa.String(length=48), nullable=False),
    sa.Column('average', sa.String(length=48), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['trade_id'], ['trades.id'], name=op.f('fk_orders_trade_id_trades')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('client_order_id', name=op.f('uq_orders_client_order_id'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_exchange_order_id'), ['exchange_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_trade_id'), ['trade_id'], unique=False)

    op.create_table('fills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('trade_id', sa.Integer(), nullable=True),
    sa.Column('pair', sa.String(length=32), nullable=False),
    sa.Column('exchange_trade_id', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('price', sa.String(length=48), nullable=False),
    sa.Column('amount', sa.String(length=48), nullable=False),
    sa.Column('fee', sa.String(length=48), nullable=False),
    sa.Column('fee_asset', sa.String(length=12), nullable=False),
    sa.Column('is_maker', sa.Boolean(), nullable=False),
    sa.Column('realized_pnl', sa.String(length=48), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_fills_order_id_orders')),
    sa.ForeignKeyConstraint(['trade_id'], ['trades.id'], name=op.f('fk_fills_trade_id_trades')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fills')),
    sa.UniqueConstraint('pair', 'exchange_trade_id', name=op.f('uq_fills_pair'))
    )
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fills_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fills_trade_id'), ['trade_id'], unique=False)




def downgrade() -> None:
    """Downgrade schema."""
    
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fills_trade_id'))
        batch_op.drop_index(batch_op.f('ix_fills_order_id'))

    op.drop_table('fills')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_trade_id'))
        batch_op.drop_index(batch_op.f('ix_orders_status'))
        batch_op.drop_index(batch_op.f('ix_orders_exchange_order_id'))

    op.drop_table('orders')
    with op.batch_alter_table('funding_payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_funding_payments_trade_id'))

    op.drop_table('funding_payments')
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trades_status'))
        batch_op.drop_index(batch_op.f('ix_trades_pair'))
        batch_op.drop_index(batch_op.f('ix_trades_backtest_run_id'))

    op.drop_table('trades')
    op.drop_table('runtime_state')
    op.drop_table('backtest_runs')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_user_id'))
        batch_op.drop_index('ix_audit_events_time')

    op.drop_table('audit_events')

