"""Application settings, read from `SECONDOPINION_*` environment variables or a `.env` file."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_STORAGE_SECRET = 'development-only-storage-secret-change-me'
MIN_PRODUCTION_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Every setting of the app with its embedded default for a fresh machine."""

    model_config = SettingsConfigDict(env_prefix='SECONDOPINION_', env_file='.env', extra='ignore')

    environment: str = Field('development', description='development or production')
    host: str = '127.0.0.1'
    port: int = 8080
    data_dir: Path = Path('data')
    database_url: str | None = Field(None, description='SQLAlchemy URL; default is a SQLite file in data_dir')
    storage_secret: SecretStr = SecretStr(DEVELOPMENT_STORAGE_SECRET)
    public_base_url: str = Field(
        'http://127.0.0.1:8080', description='Address patients use, for links in emails; when unset, '
                                            'http://127.0.0.1 with the port the app listens on')
    practice_name: str = 'SecondOpinion Radiology'
    behind_https_proxy: bool = Field(
        False, description='Trust the X-Forwarded-Proto header of a reverse proxy that terminates HTTPS, so that '
                           'responses to requests it forwarded as https get the Strict-Transport-Security header')

    # Prices in cents of `currency`, by modality code; `default_price_cents` for any other modality.
    currency: str = 'EUR'
    prices_cents: dict[str, int] = {'CT': 15000, 'MR': 18000, 'CR': 6000, 'DX': 6000, 'US': 8000, 'MG': 9000}
    default_price_cents: int = 10000
    urgent_surcharge_percent: int = 50
    # Promised time from payment to the final report. Each examination keeps the promise made when it
    # was paid; the board sorts by the time left, and admins see the cases past their promise.
    report_turnaround_hours: int = Field(
        72, ge=1, description='Hours from payment to the report promised for a routine case')
    urgent_report_turnaround_hours: int = Field(
        24, ge=1, description='Hours from payment to the report promised for an urgent case')
    platform_fee_percent: int = 30
    max_follow_up_questions: int = Field(
        3, ge=0, le=20, description='Questions a patient may ask about a report after receiving it; 0 turns them off')

    # Stripe Checkout: with no secret key, the built-in test checkout is used and no money moves.
    stripe_secret_key: SecretStr | None = Field(None, description='Stripe secret API key (sk_live_... or sk_test_...)')
    stripe_webhook_secret: SecretStr | None = Field(
        None, description='Signing secret of the webhook endpoint /api/stripe/webhook (whsec_...)')
    stripe_api_base: str | None = Field(None, description="Stripe API address; empty means Stripe's own")

    # Upload limits in bytes.
    max_file_bytes: int = 1024 * 1024 * 1024
    max_examination_bytes: int = 4 * 1024 * 1024 * 1024
    max_files_per_upload: int = Field(5000, description='Files one upload may announce; a CT series has up to ~2,000')
    upload_concurrency: int = Field(3, ge=1, le=8, description='Files the browser sends at the same time')

    # Email: with no smtp_host, messages are written as .eml files into data_dir/outbox.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    mail_from: str = 'no-reply@secondopinion.local'

    # Text messages through Twilio; with no account, texts are only written to the log.
    twilio_account_sid: str | None = Field(None, description='Twilio account SID (AC...)')
    twilio_auth_token: SecretStr | None = Field(None, description='Twilio auth token')
    twilio_from: str = Field('', description='Sender: an E.164 number like +41445551234, or a messaging service SID')
    twilio_api_base: str | None = Field(None, description="Twilio API address; empty means Twilio's own")

    # Blob storage: Azure Blob Storage when the connection string is set, else the folder data_dir/blobs.
    azure_storage_connection_string: SecretStr | None = Field(
        None, description='Azure Storage connection string. When set, files are stored in Azure, not data_dir/blobs')
    azure_storage_container: str = Field(
        'secondopinion', min_length=3, max_length=63, pattern=r'^[a-z0-9]+(-[a-z0-9]+)*$',
        description='Azure container, created when missing: lowercase letters, digits and single hyphens')

    # Several app instances: events cross instances through Redis when this is set, else through the
    # PostgreSQL database; NiceGUI's per-user storage moves to Redis too.
    redis_url: str | None = Field(
        None, description='Redis URL (redis://host:6379/0, rediss:// for TLS); empty means no Redis')
    redis_key_prefix: str = Field(
        'secondopinion', pattern=r'^[A-Za-z0-9_.-]+$',
        description='Prefix of the Redis channel and keys, one per environment sharing a Redis server')

    log_format: Literal['text', 'json'] = Field(
        'text', description='text, or json for one JSON object per line (for log collectors)')

    # Sessions: signed out after this long without activity, and after the maximum in any case.
    session_idle_minutes: int = Field(30, ge=1, description='Minutes without activity after which a session ends')
    session_max_hours: int = Field(12, ge=1, description='Hours after sign-in after which a session ends')

    # Sign-in with Microsoft (Entra ID) and Google through OpenID Connect. A provider's button appears
    # only when both its client id and its client secret are set.
    microsoft_client_id: str | None = Field(None, description='Application (client) ID of the Entra ID app')
    microsoft_client_secret: SecretStr | None = Field(None, description='Client secret of the Entra ID app')
    microsoft_tenant: str = Field(
        'common', pattern=r'^[A-Za-z0-9.-]+$',
        description='Entra ID tenant: common (work, school and personal Microsoft accounts), organizations, '
                    'consumers, or one tenant id or domain')
    microsoft_metadata_url: str | None = Field(
        None, description="OpenID Connect discovery document; empty means Microsoft's for the tenant")
    google_client_id: str | None = Field(None, description='OAuth client ID from the Google Cloud console')
    google_client_secret: SecretStr | None = Field(None, description='OAuth client secret from the Google console')
    google_metadata_url: str | None = Field(None, description="OpenID Connect discovery document; empty means Google's")

    # Operations: the Prometheus scrape route and the stop on SIGTERM.
    metrics_token: SecretStr | None = Field(
        None, description='Bearer token that GET /metrics requires. Empty leaves the route open')
    shutdown_grace_seconds: float = Field(
        30.0, gt=0, description='Seconds a stopping server waits for requests in flight before it cancels them')

    notification_interval_seconds: float = 5.0
    notification_max_attempts: int = 8
    notification_retry_base_seconds: float = Field(
        30.0, gt=0, description='Wait after the first failed attempt; it doubles with each further one, up to 1 hour')

    dicom_transfer_timeout_minutes: int = Field(
        60, ge=1, description='Minutes a DICOM send may run before it stops as failed. A send left "running" by a '
                              'stopped server is marked failed 5 minutes after this')

    @model_validator(mode='after')
    def _links_follow_the_port(self) -> Settings:
        # Without an explicit public address, links in emails point at this app on its own port.
        if 'public_base_url' not in self.model_fields_set or not self.public_base_url:
            self.public_base_url = f'http://127.0.0.1:{self.port}'
        return self

    @model_validator(mode='after')
    def _reject_unsafe_production(self) -> Settings:
        problems = self.production_problems() if self.environment == 'production' else []
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            problems.append('SECONDOPINION_STRIPE_WEBHOOK_SECRET must be set with SECONDOPINION_STRIPE_SECRET_KEY, '
                            'because payments are confirmed by the webhook only')
        if problems:
            # One line per problem; `cli.check_settings` prints each on its own line.
            raise ValueError('\n'.join(problems))
        return self

    def production_problems(self) -> list[str]:
        """Return what keeps these settings from being safe for real patients, one sentence per setting."""
        problems = []
        secret = self.storage_secret.get_secret_value()
        if secret == DEVELOPMENT_STORAGE_SECRET:
            problems.append('SECONDOPINION_STORAGE_SECRET must be set to a random value in production')
        elif len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
            problems.append(f'SECONDOPINION_STORAGE_SECRET must have at least {MIN_PRODUCTION_SECRET_LENGTH} '
                            'characters in production, e.g. the output of `python -c "import secrets; '
                            'print(secrets.token_urlsafe(48))"`')
        if not self.database_url:
            problems.append('SECONDOPINION_DATABASE_URL must be set in production')
        if not self.stripe_secret_key:
            problems.append('SECONDOPINION_STRIPE_SECRET_KEY must be set in production, because without it the '
                            'test checkout takes no money')
        if not self.smtp_host:
            problems.append('SECONDOPINION_SMTP_HOST must be set in production, because without it emails are '
                            'only written to files')
        if not self.public_base_url.startswith('https://'):
            problems.append('SECONDOPINION_PUBLIC_BASE_URL must start with https:// in production, because the '
                            'links in emails carry sign-in secrets')
        return problems

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f'sqlite:///{(self.data_dir / "secondopinion.db").resolve()}'

    @property
    def cookies_secure(self) -> bool:
        """Whether browsers reach the app over HTTPS, so that cookies must carry the Secure flag."""
        return self.behind_https_proxy or self.public_base_url.startswith('https://')

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / 'blobs'

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / 'outbox'

    def price_for(self, modality: str, urgency: str) -> int:
        """Return the price in cents for an examination of this modality and urgency."""
        return self.with_urgency(self.prices_cents.get(modality.upper(), self.default_price_cents), urgency)

    def turnaround_hours(self, urgency: str) -> int:
        """Return the promised hours from payment to the report for this urgency."""
        return self.urgent_report_turnaround_hours if urgency == 'urgent' else self.report_turnaround_hours

    def with_urgency(self, base_cents: int, urgency: str) -> int:
        """Return the price in cents for this urgency, given the routine price `base_cents`."""
        if urgency == 'urgent':
            return base_cents + base_cents * self.urgent_surcharge_percent // 100
        return base_cents


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings so the next call reads the environment again (used by tests)."""
    get_settings.cache_clear()
