"""Peer: the FastAPI documentation's recipe, "OAuth2 with Password (and hashing), Bearer with JWT tokens".

Written as the tutorial writes it (fastapi.tiangolo.com/tutorial/security/oauth2-jwt/):
`OAuth2PasswordBearer`, PyJWT `jwt.decode` with HS256 on every request, `get_current_user`
looking the user up in an in-memory fake database and building a pydantic model,
`get_current_active_user` on top, pwdlib (Argon2) for the login route. `--sync` turns the
recipe's two dependencies into plain `def` functions, which FastAPI runs in its threadpool:
the variant a team writing sync code gets. The protected route returns the suite's JSON
shape, so only authentication differs between contenders.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies in these
# annotations at runtime, and `create_app` builds them from a local variable.
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from jwt.exceptions import InvalidTokenError
from pwdlib import PasswordHash
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from bench.apps import run, serve_parser

TOKEN_PATH = "/token"
CREDENTIALS = {"username": "johndoe", "password": "secret"}

SECRET_KEY = "b4f0e1c2d3a5968778695a4b3c2d1e0f9a8b7c6d5e4f30211f2e3d4c5b6a7988"  # bench only
ALGORITHM = "HS256"
ACCESS_TOKEN_EXPIRE_MINUTES = 60  # outlives the longest suite

password_hash = PasswordHash.recommended()

fake_users_db = {
    "johndoe": {
        "username": "johndoe",
        "full_name": "John Doe",
        "email": "johndoe@example.com",
        "hashed_password": password_hash.hash(CREDENTIALS["password"]),
        "disabled": False,
    }
}


class Token(BaseModel):
    access_token: str
    token_type: str


class TokenData(BaseModel):
    username: str | None = None


class User(BaseModel):
    username: str
    email: str | None = None
    full_name: str | None = None
    disabled: bool | None = None


class UserInDB(User):
    hashed_password: str


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


def get_user(db: dict[str, dict[str, Any]], username: str) -> UserInDB | None:
    if username in db:
        return UserInDB(**db[username])
    return None


def authenticate_user(db: dict[str, dict[str, Any]], username: str, password: str) -> UserInDB | None:
    user = get_user(db, username)
    if user is None or not password_hash.verify(password, user.hashed_password):
        return None
    return user


def create_access_token(data: dict[str, Any], expires_delta: timedelta) -> str:
    return jwt.encode({**data, "exp": datetime.now(UTC) + expires_delta}, SECRET_KEY, algorithm=ALGORITHM)


def _current_user(token: str) -> UserInDB:
    """The body the tutorial's `get_current_user` has, shared by the async and sync variants."""
    credentials_exception = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
        username = payload.get("sub")
        if username is None:
            raise credentials_exception
        token_data = TokenData(username=username)
    except InvalidTokenError:
        raise credentials_exception from None
    user = get_user(fake_users_db, username=str(token_data.username))
    if user is None:
        raise credentials_exception
    return user


def _active(current_user: User) -> User:
    if current_user.disabled:
        raise HTTPException(status_code=400, detail="Inactive user")
    return current_user


async def get_current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> UserInDB:
    return _current_user(token)


async def get_current_active_user(current_user: Annotated[User, Depends(get_current_user)]) -> User:
    return _active(current_user)


def get_current_user_sync(token: Annotated[str, Depends(oauth2_scheme)]) -> UserInDB:
    return _current_user(token)


def get_current_active_user_sync(current_user: Annotated[User, Depends(get_current_user_sync)]) -> User:
    return _active(current_user)


def create_app(*, sync: bool) -> FastAPI:
    app = FastAPI(title=f"bench peer: FastAPI docs recipe ({'sync' if sync else 'async'})")
    current: Callable[..., Any] = get_current_active_user_sync if sync else get_current_active_user
    name = "docs-sync" if sync else "docs-async"

    @app.post(TOKEN_PATH, response_model=Token)
    async def login_for_access_token(form_data: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
        user = authenticate_user(fake_users_db, form_data.username, form_data.password)
        if not user:
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="Incorrect username or password",
                headers={"WWW-Authenticate": "Bearer"},
            )
        access_token = create_access_token({"sub": user.username}, timedelta(minutes=ACCESS_TOKEN_EXPIRE_MINUTES))
        return Token(access_token=access_token, token_type="bearer")

    @app.get("/me")
    async def me(current_user: Annotated[User, Depends(current)]) -> Response:
        return JSONResponse({"replica": name, "claims": current_user.model_dump(exclude={"hashed_password"})})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    parser = serve_parser(__doc__ or "")
    parser.add_argument("--sync", action="store_true", help="plain def dependencies (run in the threadpool)")
    args = parser.parse_args()
    run(create_app(sync=args.sync), args)
