"""Files under the var/ directory that the running processes share.

The supervisor (`manage.py up`) writes the URL of the private redis-server it started, so
that every other `manage.py` command on this machine (shell, CLI runs) reaches the same
broker without configuration.
"""

from pathlib import Path
import secrets


def embedded_redis_url_file(var_dir: Path) -> Path:
    return var_dir / "redis.url"


def read_embedded_redis_url(var_dir: Path) -> str:
    path = embedded_redis_url_file(var_dir)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def demo_password_file(var_dir: Path) -> Path:
    """The demo user's password, written by `manage.py seed_demo`, shown by `manage.py up`."""
    return var_dir / "demo_password"


def persistent_secret_key(var_dir: Path) -> str:
    """A secret key generated once per installation, so sessions survive restarts."""
    path = var_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()
