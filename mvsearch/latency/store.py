"""Where latency measurements live: two tables beside Optuna's, in the study's own database.

``mvsearch_latency_devices`` holds what a measurement ran on (backend, threads, accelerator, CPU
model, torch and runtime versions; unique together), ``mvsearch_latency`` one row per study,
subject and device, where a subject is ``trial:<number>`` or ``preset:<name>``. So several machines
can measure the same study and their figures coexist. Written with SQLAlchemy 2.0 (declarative
``Mapped[...]`` models, ``select()``) on the storage URL Optuna uses, through one session helper
that commits, rolls back, and turns database errors into :class:`~mvsearch.core.errors.StudyError`.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Iterator
from sqlalchemy import (DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine,
                        inspect, select)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from mvsearch.arch.geometry import parse_resolution
from mvsearch.core.errors import MvsearchError, StudyError, first_line
from mvsearch.latency.measure import Device, Timing
from mvsearch.search.record import trial_key


class _Base(DeclarativeBase):
    pass


class DeviceRow(_Base):
    __tablename__ = "mvsearch_latency_devices"
    __table_args__ = (UniqueConstraint("backend", "threads", "accelerator", "cpu", "torch_version",
                                       "runtime_version", name="mvsearch_latency_devices_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    backend: Mapped[str] = mapped_column(String(32))
    threads: Mapped[int] = mapped_column(Integer)
    accelerator: Mapped[str] = mapped_column(String(256))
    cpu: Mapped[str] = mapped_column(String(256))
    torch_version: Mapped[str] = mapped_column(String(64))
    runtime_version: Mapped[str] = mapped_column(String(64))

    def to_device(self) -> Device:
        return Device(self.backend, self.threads, self.accelerator, self.cpu, self.torch_version,
                      self.runtime_version)


class LatencyRow(_Base):
    __tablename__ = "mvsearch_latency"
    __table_args__ = (UniqueConstraint("study_name", "subject", "device_id", name="mvsearch_latency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_name: Mapped[str] = mapped_column(String(512), index=True)
    subject: Mapped[str] = mapped_column(String(128))  # "trial:<number>" or "preset:<name>"
    trial_number: Mapped[int | None] = mapped_column(Integer)
    preset: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[int] = mapped_column(ForeignKey("mvsearch_latency_devices.id"))
    resolution_h: Mapped[int] = mapped_column(Integer)
    resolution_w: Mapped[int] = mapped_column(Integer)
    median_ms: Mapped[float] = mapped_column(Float)
    q1_ms: Mapped[float] = mapped_column(Float)
    q3_ms: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    warmup: Mapped[int] = mapped_column(Integer)
    ratio_xxs: Mapped[float] = mapped_column(Float)  # median / mobilevit_xxs median, same meter
    ref_median_ms: Mapped[float] = mapped_column(Float)  # that reference median
    samples_ms: Mapped[str] = mapped_column(Text)  # JSON list of every timed run
    measured_at: Mapped[dt.datetime] = mapped_column(DateTime)
    device: Mapped[DeviceRow] = relationship(lazy="joined")


@dataclass(frozen=True)
class LatencyRecord:
    """One stored measurement."""

    study_name: str
    subject: str  # "trial:<number>" or "preset:<name>"
    trial_number: int | None
    preset: str | None
    device: Device
    resolution: tuple[int, int]
    median_ms: float
    q1_ms: float
    q3_ms: float
    count: int
    warmup: int
    ratio_xxs: float
    ref_median_ms: float
    measured_at: dt.datetime

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    @classmethod
    def _of(cls, row: LatencyRow) -> LatencyRecord:
        return cls(row.study_name, row.subject, row.trial_number, row.preset, row.device.to_device(),
                   (row.resolution_h, row.resolution_w), row.median_ms, row.q1_ms, row.q3_ms, row.count,
                   row.warmup, row.ratio_xxs, row.ref_median_ms, row.measured_at)


def trial_subject(ref: str | int) -> str:
    """A trial's subject: ``trial:<ref>`` (the key is spelled once, in the trial record)."""
    return trial_key(str(ref))


def preset_subject(name: str) -> str:
    return f"preset:{name}"


class Store:
    """The latency tables in the database at ``storage`` (an SQLAlchemy URL, Optuna's storage)."""

    def __init__(self, storage: str) -> None:
        self.url = storage
        kw: dict[str, Any] = {"connect_args": {"timeout": 30}} if storage.startswith("sqlite") else {}
        try:
            self.engine = create_engine(storage, **kw)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StudyError(f"cannot open storage {storage}: {first_line(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success, rolls back on error, and re-raises DB errors as StudyError."""
        with Session(self.engine) as s:
            try:
                yield s
                s.commit()
            except SQLAlchemyError as exc:
                s.rollback()
                raise StudyError(f"latency storage {self.url}: {first_line(exc)}") from None

    def _has_tables(self) -> bool:
        try:
            return inspect(self.engine).has_table(LatencyRow.__tablename__)
        except SQLAlchemyError as exc:
            raise StudyError(f"cannot open storage {self.url}: {first_line(exc)}") from None

    def put(self, study_name: str, subject: str, device: Device, resolution: Any, timing: Timing,
            reference: Timing) -> LatencyRecord:
        """Insert or replace the measurement of ``subject`` on ``device``."""
        try:
            _Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise StudyError(f"latency storage {self.url}: {first_line(exc)}") from None
        h, w = parse_resolution(resolution)
        kind, _, name = subject.partition(":")
        with self.session() as s:
            dev = s.scalars(select(DeviceRow).filter_by(**device.__dict__)).one_or_none()
            if dev is None:
                dev = DeviceRow(**device.__dict__)
                s.add(dev)
                s.flush()
            row = s.scalars(select(LatencyRow).filter_by(study_name=study_name, subject=subject,
                                                         device_id=dev.id)).one_or_none()
            if row is None:
                row = LatencyRow(study_name=study_name, subject=subject, device_id=dev.id)
                s.add(row)
            num = name.rpartition("/")[2]  # a trial ref: "1.5G/3" (or "3" in a schema-1 study)
            row.trial_number = int(num) if kind == "trial" and num.isdigit() else None
            row.preset = name if kind == "preset" else None
            row.resolution_h, row.resolution_w = h, w
            row.median_ms, row.q1_ms, row.q3_ms = timing.median_ms, timing.q1_ms, timing.q3_ms
            row.count, row.warmup = timing.count, timing.warmup
            row.ratio_xxs = timing.median_ms / reference.median_ms
            row.ref_median_ms = reference.median_ms
            row.samples_ms = json.dumps([round(v, 4) for v in timing.samples_ms])
            row.measured_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            s.flush()
            s.refresh(row)
            return LatencyRecord._of(row)

    def records(self, study_name: str, device: Device | None = None) -> list[LatencyRecord]:
        """Every measurement of ``study_name`` (on ``device`` only, when given)."""
        if not self._has_tables():
            return []
        with self.session() as s:
            q = select(LatencyRow).where(LatencyRow.study_name == study_name)
            if device is not None:
                q = q.join(LatencyRow.device).filter_by(**device.__dict__)
            return [LatencyRecord._of(r) for r in s.scalars(q.order_by(LatencyRow.id))]

    def devices(self, study_name: str) -> list[tuple[Device, int]]:
        """Devices with measurements of ``study_name`` and how many trials each measured, most first."""
        counts: dict[Device, list] = {}
        for r in self.records(study_name):
            c = counts.setdefault(r.device, [0, r.measured_at])
            c[0] += r.trial_number is not None
            c[1] = max(c[1], r.measured_at)
        ranked = sorted(counts.items(), key=lambda kv: (kv[1][0], kv[1][1]), reverse=True)
        return [(d, c[0]) for d, c in ranked]


def pick_device(storage: str, study_name: str, backend: str | None = None) -> Device | None:
    """The device whose measurements a report shows: the one that measured most trials (newest on ties)."""
    from mvsearch.latency.measure import BACKENDS

    if backend is not None and backend not in BACKENDS:
        raise MvsearchError(f"--backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    with Store(storage) as store:
        for dev, _ in store.devices(study_name):
            if backend is None or dev.backend == backend:
                return dev
    return None


def latencies(storage: str, study_name: str, device: Device) -> dict[str, LatencyRecord]:
    """``subject -> record`` for one device."""
    with Store(storage) as store:
        return {r.subject: r for r in store.records(study_name, device)}
