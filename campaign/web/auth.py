"""Who is asking, and may they: sessions, API tokens, roles, sign-in and its throttle.

- A browser is signed in by the `campaign_session` cookie (Starlette's SessionMiddleware,
  signed with itsdangerous; HttpOnly, SameSite=strict, Secure under HTTPS: security.py).
  The session holds the user's name, a fingerprint of its password hash (a new password
  ends every session of the old one) and the CSRF token. The user is looked up on every
  request: a removed or disabled user is signed out at once.
- An API client sends `Authorization: Bearer TOKEN` to /api/v1 (no cookie is used there
  then; the CSRF check does not apply: security.py).
- `require(request, role)`: the user, or an HTTPException: not signed in -> 303 to
  /login?next=... for pages, 401 for the API; a role too low -> 403.
- Sign-in: 5 failures per (name, client address) in 15 minutes -> 429 with Retry-After;
  every success and failure is in the audit log.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict, deque
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from campaign.outcomes import AuditAction, Role
from campaign.passwords import hash_password, needs_rehash, verify_password
from campaign.store.users import User, get_user, record_audit, set_password, user_for_token
from campaign.web.security import API_PREFIX, client_ip, is_bearer_api

SESSION_COOKIE = "campaign_session"
SESSION_MAX_AGE = 12 * 3600  # seconds a session lasts after sign-in
SESSION_KEY_NAME = "session_key"  # web_secrets.key of the generated signing key
LOGIN_PATH = "/login"
MAX_FAILURES = 5
FAILURE_WINDOW = 15 * 60.0  # seconds
MAX_NAME_CHARS = 200
MAX_PASSWORD_CHARS = 1024
_USER_STATE = "campaign_user"


def is_api(request: HTTPConnection) -> bool:
    return request.url.path.startswith(API_PREFIX)


def trust_proxy(request: HTTPConnection) -> bool:
    return bool(request.app.state.settings.web.trust_proxy)


def ip_of(request: HTTPConnection) -> str | None:
    """The client's address (the trusted proxy's word for it: security.client_ip)."""
    return client_ip(request.scope, trust_proxy(request))


def password_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def current_user(request: HTTPConnection) -> User | None:
    """The signed-in user (session cookie) or, for /api/, the bearer token's; None if
    neither. Looked up once per request."""
    if _USER_STATE in request.scope:
        found: User | None = request.scope[_USER_STATE]
        return found
    user = _token_user(request) if is_api(request) and is_bearer_api(request.scope) else None
    if user is None and not is_bearer_api(request.scope):
        user = _session_user(request)
    request.scope[_USER_STATE] = user
    return user


def _token_user(request: HTTPConnection) -> User | None:
    token = request.headers.get("authorization", "")[7:].strip()
    return user_for_token(request.app.state.engine, token) if token else None


def _session_user(request: HTTPConnection) -> User | None:
    session = request.scope.get("session")
    if not session:
        return None
    name = session.get("user")
    if not name or not isinstance(name, str):
        return None
    user = get_user(request.app.state.engine, name)
    if user is None or user.disabled or session.get("pw") != password_fingerprint(user):
        session.pop("user", None)
        session.pop("pw", None)
        return None
    return user


def require(request: HTTPConnection, role: Role = Role.VIEWER) -> User:
    """The user, allowed to act as `role`; else HTTPException (see the module docstring)."""
    user = current_user(request)
    if user is None:
        if is_api(request):
            raise HTTPException(401, "sign-in needed", headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(303, "sign-in needed", headers={"Location": login_url(request)})
    if not user.may(role):
        raise HTTPException(403, f"this needs the role {role} or higher")
    return user


def login_url(request: HTTPConnection) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{LOGIN_PATH}?next={quote(here, safe='')}"


def safe_next(value: str | None) -> str:
    """A local path to go to after sign-in (never another site: no "//", no scheme)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def csrf_token(request: HTTPConnection) -> str:
    """The session's CSRF token (made on first use; an anonymous session gets one too,
    for the sign-in form)."""
    session = request.session
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


# --------------------------------------------------------------------------- sign-in


class LoginThrottle:
    """Failed sign-ins per (name, address) in the last `window` seconds (this process)."""

    def __init__(
        self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW, keys: int = 10_000
    ) -> None:
        self.limit, self.window, self.keys = limit, window, keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, name: str, ip: str | None, now: float | None = None) -> float | None:
        """Seconds until (name, ip) may try again, or None when it may now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent((name, ip or ""), now)
            if len(times) < self.limit:
                return None
            return max(1.0, times[0] + self.window - now)

    def failed(self, name: str, ip: str | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            key = (name, ip or "")
            self._recent(key, now).append(now)
            self._failures.move_to_end(key)
            while len(self._failures) > self.keys:
                self._failures.popitem(last=False)

    def succeeded(self, name: str, ip: str | None) -> None:
        with self._lock:
            self._failures.pop((name, ip or ""), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times


class LoginRefused(Exception):
    """Sign-in refused: `retry_after` seconds set when throttled (429), else wrong (401)."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("sign-in refused")
        self.retry_after = retry_after


def login(request: Request, name: str, password: str) -> User:
    """Check the password and start a session; LoginRefused otherwise. Audited both ways."""
    state = request.app.state
    ip = ip_of(request)
    name = name.strip()[:MAX_NAME_CHARS]
    wait = state.login_throttle.retry_after(name, ip)
    if wait is not None:
        record_audit(state.engine, name, AuditAction.LOGIN_FAILED, {"why": "throttled"}, ip)
        raise LoginRefused(wait)
    user = get_user(state.engine, name) if name else None
    good = verify_password(user.password_hash if user else None, password[:MAX_PASSWORD_CHARS])
    if user is None or not good or user.disabled:
        state.login_throttle.failed(name, ip)
        why = "disabled" if user is not None and good else "wrong name or password"
        record_audit(state.engine, name, AuditAction.LOGIN_FAILED, {"why": why}, ip)
        raise LoginRefused(None)
    state.login_throttle.succeeded(name, ip)
    if needs_rehash(user.password_hash):
        set_password(state.engine, user.name, hash_password(password))
        user = get_user(state.engine, user.name) or user
    _start_session(request, user)
    record_audit(state.engine, user.name, AuditAction.LOGIN, None, ip)
    return user


def _start_session(request: Request, user: User) -> None:
    session = request.session
    session.clear()  # nothing of the anonymous session carries over
    session["user"] = user.name
    session["pw"] = password_fingerprint(user)
    session["csrf"] = secrets.token_urlsafe(32)
    request.scope[_USER_STATE] = user


def logout(request: Request) -> None:
    user = current_user(request)
    request.session.clear()
    request.scope[_USER_STATE] = None
    if user is not None:
        record_audit(request.app.state.engine, user.name, AuditAction.LOGOUT, None, ip_of(request))


def audit(
    request: HTTPConnection, action: AuditAction, detail: dict[str, object] | None = None
) -> None:
    """One audit row for what the current user did (from the request's address)."""
    user = current_user(request)
    record_audit(
        request.app.state.engine, user.name if user else None, action, detail, ip_of(request)
    )


__all__ = [
    "SESSION_COOKIE",
    "LoginRefused",
    "LoginThrottle",
    "audit",
    "csrf_token",
    "current_user",
    "ip_of",
    "is_api",
    "login",
    "login_url",
    "logout",
    "require",
    "safe_next",
]
