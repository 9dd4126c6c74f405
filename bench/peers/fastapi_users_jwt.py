"""Peer: fastapi-users with its JWT strategy and the SQLAlchemy user database on SQLite.

Wired as fastapi-users' own "full example" wires it: `SQLAlchemyUserDatabase` over an
aiosqlite session per request, a `UserManager` (UUID ids), `BearerTransport` +
`JWTStrategy` in an `AuthenticationBackend`, and `fastapi_users.current_user(active=True)`
guarding the route, which costs a JWT decode plus a user lookup in the database on every
request. The bench user is created at start-up; the harness logs in through the library's
own login route (`POST /auth/jwt/login`) to get its token.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies in these
# annotations at runtime, and `create_app` builds them from local variables.
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, exceptions, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from starlette.responses import JSONResponse, Response

from bench.apps import run, serve_parser

TOKEN_PATH = "/auth/jwt/login"
CREDENTIALS = {"username": "bench@example.com", "password": "bench password"}
SECRET = "4c7d0a9e2b1f6e3d8c5a7b9e0f1d2c3b4a5e6f7081928374"  # bench only


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


def get_jwt_strategy() -> JWTStrategy[User, uuid.UUID]:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


def create_app(db: Path) -> FastAPI:
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    async_session_maker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_async_session() -> AsyncIterator[AsyncSession]:
        async with async_session_maker() as session:
            yield session

    async def get_user_db(session: AsyncSession = Depends(get_async_session)) -> AsyncIterator[Any]:
        yield SQLAlchemyUserDatabase(session, User)

    async def get_user_manager(user_db: Any = Depends(get_user_db)) -> AsyncIterator[UserManager]:
        yield UserManager(user_db)

    auth_backend = AuthenticationBackend(
        name="jwt", transport=BearerTransport(tokenUrl=TOKEN_PATH.lstrip("/")), get_strategy=get_jwt_strategy
    )
    fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])
    current_active_user = fastapi_users.current_user(active=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with async_session_maker() as session:
            manager = UserManager(SQLAlchemyUserDatabase(session, User))
            with contextlib.suppress(exceptions.UserAlreadyExists):
                await manager.create(UserCreate(email=CREDENTIALS["username"], password=CREDENTIALS["password"]))
        yield
        await engine.dispose()

    app = FastAPI(title="bench peer: fastapi-users JWT + SQLAlchemy", lifespan=lifespan)
    app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt")

    @app.get("/me")
    async def me(user: User = Depends(current_active_user)) -> Response:
        return JSONResponse(
            {
                "replica": "fastapi-users",
                "claims": {
                    "sub": str(user.id),
                    "email": user.email,
                    "is_active": user.is_active,
                    "is_superuser": user.is_superuser,
                    "is_verified": user.is_verified,
                },
            }
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    parser = serve_parser(__doc__ or "")
    parser.add_argument("--db", type=Path, required=True, help="SQLite file of the user database")
    args = parser.parse_args()
    run(create_app(args.db), args)
