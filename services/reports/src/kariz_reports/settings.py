"""Settings of the reports service, read from ``KARIZ_<FIELD>``."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from kariz_reports.domain.periods import Calendar, Year
from kariz_reports.domain.snapshots import SnapshotSchedule, Weekday
from kariz_shared.runtime.settings import ServiceSettings


class ReportsSettings(ServiceSettings):
    service_name: str = "reports"
    http_port: int = 8006

    #: The organisation's time zone (IANA): a figure counts on the local day it happened, and "this
    #: week" begins at local midnight.
    report_time_zone: str = "UTC"
    #: The month (1-12, of the calendar below) the fiscal year starts with; quarters follow it.
    fiscal_year_start_month: int = Field(default=1, ge=1, le=12)
    #: The calendar a report's months, quarters and years are in unless it asks (``?calendar=``).
    report_calendar: Calendar = Calendar.GREGORIAN
    #: Records the rebuild reads from the retained topics before it writes its progress and lag.
    rebuild_progress_every: int = Field(default=1000, ge=1, le=1_000_000)

    #: The weekday and local time (in ``report_time_zone``) the weekly forecast snapshot is taken.
    forecast_snapshot_weekday: Weekday = Weekday.MONDAY
    forecast_snapshot_time: time = time(0, 0)

    @field_validator("report_time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"report_time_zone {name!r} is not an IANA time zone") from exc
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.report_time_zone)

    @property
    def snapshot_schedule(self) -> SnapshotSchedule:
        at = self.forecast_snapshot_time.replace(tzinfo=None)
        return SnapshotSchedule(self.forecast_snapshot_weekday, at, self.zone, self.report_time_zone)

    def year(self, calendar: Calendar | None = None) -> Year:
        return Year(calendar or self.report_calendar, self.fiscal_year_start_month)
