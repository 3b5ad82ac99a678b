"""The SQLAlchemy 2 column type and defaults against real PostgreSQL and SQLite, and the
Alembic operations through Alembic's own command API."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from chronoid import get_layout
from chronoid.errors import InvalidArgument
from chronoid.integrations.defaults import IdDefault
from chronoid.integrations.sqlalchemy import (
    ChronoIdType,
    chronoid_next,
    register_sqlite_functions,
)
from chronoid.postgres import installer
from tests.integrations.conftest import url_for


def _models(server: bool) -> tuple[type, type, sa.MetaData]:
    class Base(DeclarativeBase):
        pass

    class Order(Base):
        __tablename__ = "orders"
        if server:
            id: Mapped[int] = mapped_column(
                ChronoIdType("chrono64s"),
                primary_key=True,
                server_default=chronoid_next("chrono64s"),
            )
        else:
            id: Mapped[int] = mapped_column(  # type: ignore[no-redef]
                ChronoIdType("chrono64s"), primary_key=True, default=IdDefault("chrono64s", node=3)
            )
        note: Mapped[str] = mapped_column(sa.String(20), default="")

    class Tenant(Base):
        __tablename__ = "tenants"
        id: Mapped[int] = mapped_column(
            ChronoIdType("chrono32y"), primary_key=True, server_default=chronoid_next("chrono32y")
        )

    return Order, Tenant, Base.metadata


def _pg_engine(pg_dsn: str, schema: str) -> sa.Engine:
    return sa.create_engine(url_for(pg_dsn), connect_args={"options": f"-csearch_path={schema}"})


def test_column_types_follow_the_layout() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    for dialect in (postgresql.dialect(), sqlite.dialect()):
        assert ChronoIdType("chrono64s").dialect_impl(dialect).compile(dialect) == "BIGINT"
        assert ChronoIdType("chrono32y").dialect_impl(dialect).compile(dialect) == "INTEGER"
    assert ChronoIdType("uchrono32y").dialect_impl(sqlite.dialect()).compile() == "BIGINT"
    with pytest.raises(InvalidArgument, match="unsigned.*'chrono64s'"):
        ChronoIdType("uchrono64s").dialect_impl(postgresql.dialect())
    with pytest.raises(InvalidArgument, match="unsigned"):
        ChronoIdType("uchrono32y").dialect_impl(postgresql.dialect())
    with pytest.raises(InvalidArgument, match="unsigned"):
        ChronoIdType("uchrono64s").dialect_impl(sqlite.dialect())
    with pytest.raises(InvalidArgument, match="does not serve"):
        chronoid_next("chrono64us")
    with pytest.raises(InvalidArgument, match="does not serve"):
        chronoid_next("uchrono64s")  # type: ignore[arg-type]


def test_postgresql_server_default_with_returning(pg_dsn: str, pg_schema: str) -> None:
    engine = _pg_engine(pg_dsn, pg_schema)
    installer.install(pg_dsn, schema=pg_schema)
    Order, Tenant, metadata = _models(server=True)
    metadata.create_all(engine)
    with Session(engine) as session:
        orders = [Order(note=str(i)) for i in range(50)]
        tenant = Tenant()
        session.add_all([*orders, tenant])
        session.flush()  # the keys come back through INSERT ... RETURNING
        ids = [o.id for o in orders]
        assert all(isinstance(i, int) and 0 < i <= get_layout("chrono64s").max_id for i in ids)
        assert len(set(ids)) == 50
        assert 0 < tenant.id <= get_layout("chrono32y").max_id
        session.commit()
    with engine.connect() as conn:
        ddl = conn.execute(
            sa.text(
                "SELECT data_type, column_default FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = 'orders' AND column_name = 'id'"
            ),
            {"s": pg_schema},
        ).one()
        assert ddl[0] == "bigint" and "chronoid_next('chrono64s'" in ddl[1]
        new = conn.execute(sa.insert(Order.__table__).returning(Order.__table__.c.id)).scalar_one()
        assert new not in ids
    with (
        Session(engine) as session,
        pytest.raises(sa_exc.StatementError, match="not a chrono64s ID"),
    ):
        session.add(Order(id=-5))
        session.flush()
    engine.dispose()


def test_postgresql_python_default(pg_dsn: str, pg_schema: str) -> None:
    engine = _pg_engine(pg_dsn, pg_schema)
    Order, _, metadata = _models(server=False)
    metadata.create_all(engine, tables=[Order.__table__])
    with Session(engine) as session:
        orders = [Order() for _ in range(20)]
        session.add_all(orders)
        session.commit()
        assert sorted(o.id for o in orders) == [o.id for o in orders]  # increasing, one node
        assert {get_layout("chrono64s").node_of(o.id) for o in orders} == {3}
    engine.dispose()


def test_sqlite_server_default_with_returning(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    register_sqlite_functions(engine, node=7)
    Order, Tenant, metadata = _models(server=True)
    metadata.create_all(engine)
    with Session(engine) as session:
        orders = [Order() for _ in range(30)]
        tenant = Tenant()
        session.add_all([*orders, tenant])
        session.flush()
        ids = [o.id for o in orders]
        assert len(set(ids)) == 30 and all(get_layout("chrono64s").node_of(i) == 7 for i in ids)
        assert 0 < tenant.id <= get_layout("chrono32y").max_id
        session.commit()
    with engine.connect() as conn:
        stmt = sa.insert(Order.__table__).returning(Order.__table__.c.id)
        assert conn.execute(stmt).scalar_one() > max(ids)
    with pytest.raises(InvalidArgument, match="SQLite"):
        register_sqlite_functions(sa.create_engine(url_for("postgresql://u@127.0.0.1:1/x")))
    engine.dispose()


def test_sqlite_python_default_and_range_check(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Order, _, metadata = _models(server=False)
    metadata.create_all(engine, tables=[Order.__table__])
    with Session(engine) as session:
        session.add_all([Order() for _ in range(10)])
        session.commit()
        assert session.scalar(sa.select(sa.func.count()).select_from(Order)) == 10
    with Session(engine) as session, pytest.raises(sa_exc.StatementError, match="int, got bool"):
        session.add(Order(id=True))
        session.flush()


def test_python_default_survives_forked_workers(redis_url: str) -> None:
    # gunicorn --preload: the default exists before the fork; each worker leases its own node
    default = IdDefault("chrono64s", registry=f"{redis_url}?prefix=t_integ_{os.getpid()}:")
    parent = [default() for _ in range(5)]
    read, write = os.pipe()
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                values = [default() for _ in range(200)]
                os.write(write, (",".join(map(str, values)) + "\n").encode())
            finally:
                os._exit(0)
        children.append(pid)
    os.close(write)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    with os.fdopen(read) as pipe:
        lines = pipe.read().split()
    default.close()
    assert len(lines) == 3
    ids = parent + [int(v) for line in lines for v in line.split(",")]
    assert len(set(ids)) == len(ids) == 605
    nodes = {get_layout("chrono64s").node_of(i) for i in ids}
    assert len(nodes) == 4  # the parent and each worker on a node of its own


def test_fixed_node_default_refuses_a_forked_child() -> None:
    default = IdDefault("chrono64s", node=1)
    default()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            default()
            os.write(write, b"issued")
        except Exception as exc:
            os.write(write, type(exc).__name__.encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() == "GeneratorForked"


def _alembic_project(tmp_path: Path, url: str, schema: str) -> object:
    from alembic.config import Config

    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import context

            import chronoid.integrations.alembic  # registers op.install_chronoid

            engine = sa.create_engine(
                {url!r}, connect_args={{"options": "-csearch_path={schema}"}}
            )
            with engine.connect() as connection:
                context.configure(connection=connection, target_metadata=None)
                with context.begin_transaction():
                    context.run_migrations()
            """
        )
    )
    (scripts / "script.py.mako").write_text("")
    (scripts / "versions" / "0001_orders.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from alembic import op

            from chronoid.integrations.sqlalchemy import ChronoIdType, chronoid_next

            revision = "0001"
            down_revision = None

            def upgrade():
                op.install_chronoid()
                op.create_table(
                    "orders",
                    sa.Column("id", ChronoIdType("chrono64s"), primary_key=True,
                              server_default=chronoid_next("chrono64s")),
                    sa.Column("note", sa.Text()),
                )

            def downgrade():
                op.drop_table("orders")
                op.uninstall_chronoid()
            """
        )
    )
    config = Config()
    config.set_main_option("script_location", str(scripts))
    return config


def test_alembic_installs_and_removes_the_functions(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    from alembic import command

    config = _alembic_project(tmp_path, url_for(pg_dsn), pg_schema)
    command.upgrade(config, "head")  # type: ignore[arg-type]
    engine = _pg_engine(pg_dsn, pg_schema)
    with engine.begin() as conn:
        first = conn.execute(
            sa.text("INSERT INTO orders (note) VALUES ('a') RETURNING id")
        ).scalar()
        assert isinstance(first, int) and first > 0
        assert (
            conn.execute(sa.text("SELECT chronoid_version()")).scalar() == installer.SCRIPT_VERSION
        )
    command.downgrade(config, "base")  # type: ignore[arg-type]
    with engine.connect() as conn:
        gone = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = :s AND p.proname LIKE 'chronoid%'"
            ),
            {"s": pg_schema},
        ).scalar()
        assert gone == 0
    command.upgrade(config, "head")  # type: ignore[arg-type]  # and again: idempotent install
    engine.dispose()
