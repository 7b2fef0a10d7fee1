"""Settings of the qualification service, read from ``KARIZ_<FIELD>``."""

from __future__ import annotations

from kariz_shared.runtime.settings import ServiceSettings


class QualificationSettings(ServiceSettings):
    service_name: str = "qualification"
    http_port: int = 8002
