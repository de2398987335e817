"""The model registry: immutable versions plus one champion pointer, in any object store.

Layout under the store root (identical locally and on S3)::

    models/<model_name>/versions/<version>/model.onnx   immutable, written first
    models/<model_name>/versions/<version>/card.json    immutable, written second;
                                                        a version exists once its card does
    models/<model_name>/champion.json                    the pointer, written last; it also
                                                        holds the rollout, if any
    models/<model_name>/history/<sequence>.json          one entry per pointer change
    models/<model_name>/runs/<run_id>.json               one record per training run

Promotion and rollback only rewrite ``champion.json``, with compare-and-swap on
the ETag read before the decision, so a reader sees the old champion or the new
one, never a mix, and two concurrent promotions cannot both win. A crash at any
step before the pointer write leaves the previous champion serving. A staged
rollout (:mod:`mlsys.rollout`; its stored form is :class:`Rollout`) lives in the same
pointer object, so starting, completing or aborting one is the same single
compare-and-swap.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from mlsys.contract import CARD_FILE, MODEL_FILE, LoadedModel, ModelCard
from mlsys.errors import (
    ConcurrentUpdateError,
    ConfigError,
    NoChampionError,
    RegistryError,
    VersionNotFoundError,
)
from mlsys.storage import ObjectNotFoundError, ObjectStore, open_store

MAX_PREVIOUS = 20
"""How many earlier champions the pointer remembers for ``rollback``."""
RolloutMode = Literal["canary", "shadow"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_version_id(now: datetime | None = None) -> str:
    """Sortable, unique version id: ``20261129T033500123Z-1a2b3c``.

    Milliseconds are part of the id so that versions created within one second
    (quick retrains) still list in creation order.
    """
    now = (now or utc_now()).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


@dataclass(frozen=True, kw_only=True)
class Rollout:
    """An ongoing rollout of ``candidate`` next to the champion: the ``rollout`` member of
    ``champion.json``. What a rollout does (routing, evidence, decisions, transitions) is
    :mod:`mlsys.rollout`; this is only its stored form."""

    mode: RolloutMode
    candidate: str
    started: str
    """ISO-8601 UTC time the rollout began; evidence is read from this time on."""
    fraction: float | None = None
    """Canary only: share of requests the candidate answers, in (0, 1)."""
    reason: str = ""
    actor: str = ""

    def __post_init__(self) -> None:
        if self.mode == "canary":
            if self.fraction is None or not 0.0 < self.fraction < 1.0:
                raise ValueError(f"canary fraction must be in (0, 1), got {self.fraction}")
        elif self.mode == "shadow":
            if self.fraction is not None:
                raise ValueError("a shadow rollout has no fraction")
        else:
            raise ValueError(f"unknown rollout mode {self.mode!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "candidate": self.candidate,
            "fraction": self.fraction,
            "started": self.started,
            "reason": self.reason,
            "actor": self.actor,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Rollout:
        fraction = raw.get("fraction")
        return cls(
            mode=raw["mode"],
            candidate=str(raw["candidate"]),
            started=str(raw["started"]),
            fraction=None if fraction is None else float(fraction),
            reason=str(raw.get("reason", "")),
            actor=str(raw.get("actor", "")),
        )


@dataclass(frozen=True, kw_only=True)
class ChampionPointer:
    """Contents of ``champion.json`` plus the ETag it was read with."""

    version: str
    sequence: int
    reason: str
    actor: str
    updated_at: str
    previous: tuple[str, ...] = ()
    etag: str | None = field(default=None, compare=False)
    rollout: Rollout | None = None
    """A canary or shadow rollout of another version next to this champion, if any."""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": self.version,
                "sequence": self.sequence,
                "reason": self.reason,
                "actor": self.actor,
                "updated_at": self.updated_at,
                "previous": list(self.previous),
                "rollout": self.rollout.to_dict() if self.rollout else None,
            },
            indent=2,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, etag: str | None) -> ChampionPointer:
        data = json.loads(raw)
        rollout = data.get("rollout")
        return cls(
            version=str(data["version"]),
            sequence=int(data["sequence"]),
            reason=str(data.get("reason", "")),
            actor=str(data.get("actor", "")),
            updated_at=str(data.get("updated_at", "")),
            previous=tuple(str(v) for v in data.get("previous", [])),
            etag=etag,
            rollout=Rollout.from_dict(rollout) if rollout else None,
        )


class InvalidModelNameError(ConfigError, RegistryError):
    """Bad input (the CLI exits 2), and still a registry error for library callers."""

    code = "invalid_model_name"


MODEL_NAME_MAX_LENGTH = 64
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)
"""A model name: ASCII letters, digits, ``.``, ``_`` and ``-``, starting with a letter or
digit, at most :data:`MODEL_NAME_MAX_LENGTH` characters. It becomes part of S3 keys,
directory names, metric dimensions and log lines, so nothing else is accepted (no
``/``, spaces, newlines or markup)."""


def check_model_name(name: str) -> str:
    """``name`` if it is a valid model name; :class:`InvalidModelNameError` otherwise."""
    if len(name) > MODEL_NAME_MAX_LENGTH:
        raise InvalidModelNameError(
            f"model name is {len(name)} characters ({name[:20]!r}...); the limit is "
            f"{MODEL_NAME_MAX_LENGTH}"
        )
    if not MODEL_NAME_PATTERN.fullmatch(name):
        raise InvalidModelNameError(
            f"invalid model name {name!r}: use ASCII letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def _candidate(pointer: ChampionPointer, expected: ChampionPointer | None) -> str | None:
    """The rollout candidate a pointer change starts or ends (history entries name it)."""
    rollout = pointer.rollout or (expected.rollout if expected else None)
    return rollout.candidate if rollout else None


class ModelRegistry:
    """Versions and the champion of one model name in an :class:`ObjectStore`."""

    def __init__(self, store: ObjectStore, *, model_name: str) -> None:
        check_model_name(model_name)
        self.store = store
        self.model_name = model_name
        self._base = f"models/{model_name}"

    @classmethod
    def open(cls, uri: str, *, model_name: str, **store_kwargs: Any) -> ModelRegistry:
        return cls(open_store(uri, **store_kwargs), model_name=model_name)

    @property
    def uri(self) -> str:
        return self.store.uri

    # --- keys ---------------------------------------------------------------
    def _version_key(self, version: str, name: str) -> str:
        if not version or "/" in version or version.startswith("."):
            raise VersionNotFoundError(f"invalid version id {version!r}")
        return f"{self._base}/versions/{version}/{name}"

    @property
    def champion_key(self) -> str:
        return f"{self._base}/champion.json"

    # --- versions -------------------------------------------------------------
    def register(self, card: ModelCard, model_bytes: bytes) -> None:
        """Store a new immutable version: the model first, the card (its commit) last."""
        if card.model_name != self.model_name:
            raise RegistryError(
                f"card is for model {card.model_name!r}, registry is {self.model_name!r}"
            )
        try:
            self.store.write(
                self._version_key(card.version, MODEL_FILE), model_bytes, if_absent=True
            )
            self.store.write(
                self._version_key(card.version, CARD_FILE), card.to_json(), if_absent=True
            )
        except ConcurrentUpdateError:
            raise RegistryError(
                f"version {card.version} already exists; versions are immutable"
            ) from None

    def versions(self) -> list[str]:
        """Complete versions (those with a card), oldest first."""
        prefix = f"{self._base}/versions/"
        return sorted(
            key[len(prefix) :].split("/", 1)[0]
            for key in self.store.list(prefix)
            if key.endswith("/" + CARD_FILE)
        )

    def card(self, version: str) -> ModelCard:
        try:
            raw = self.store.read(self._version_key(version, CARD_FILE)).data
        except ObjectNotFoundError:
            raise VersionNotFoundError(
                f"model {self.model_name!r} has no version {version!r}"
            ) from None
        return ModelCard.from_json(raw)

    def model_bytes(self, version: str) -> bytes:
        try:
            return self.store.read(self._version_key(version, MODEL_FILE)).data
        except ObjectNotFoundError:
            raise VersionNotFoundError(
                f"model {self.model_name!r} has no version {version!r}"
            ) from None

    def load(self, version: str) -> LoadedModel:
        card = self.card(version)
        return LoadedModel(card, self.model_bytes(version))

    # --- champion -------------------------------------------------------------
    def champion(self) -> ChampionPointer | None:
        try:
            blob = self.store.read(self.champion_key)
        except ObjectNotFoundError:
            return None
        return ChampionPointer.from_json(blob.data, etag=blob.etag)

    def champion_if_changed(self, etag: str | None) -> ChampionPointer | None:
        """Cheap re-check for servers: ``None`` when the pointer still has ``etag``.

        On S3 this is a conditional GET (304 Not Modified costs no transfer).
        Raises :class:`NoChampionError` when there is no champion at all.
        """
        try:
            blob = self.store.read_if_changed(self.champion_key, etag)
        except ObjectNotFoundError:
            raise NoChampionError(f"model {self.model_name!r} has no champion yet") from None
        if blob is None:
            return None
        return ChampionPointer.from_json(blob.data, etag=blob.etag)

    def require_champion(self) -> ChampionPointer:
        pointer = self.champion()
        if pointer is None:
            raise NoChampionError(f"model {self.model_name!r} has no champion yet")
        return pointer

    def load_champion(self) -> LoadedModel:
        return self.load(self.require_champion().version)

    def promote(
        self,
        version: str,
        *,
        reason: str,
        actor: str,
        expected: ChampionPointer | None,
        action: str = "promote",
    ) -> ChampionPointer:
        """Point the champion at ``version`` if it is still ``expected`` (ending any rollout).

        ``expected`` is the pointer read before the decision was made (``None``:
        there was no champion). Raises :class:`ConcurrentUpdateError` if the
        pointer changed meanwhile, so a decision is never applied to a champion
        it did not see.
        """
        self.card(version)  # the version must exist (and be complete) first
        previous: tuple[str, ...] = ()
        if expected is not None:
            if expected.version == version:
                raise RegistryError(f"version {version} is already the champion")
            previous = ((expected.version, *expected.previous))[:MAX_PREVIOUS]
        pointer = ChampionPointer(
            version=version,
            sequence=(expected.sequence + 1) if expected else 1,
            reason=reason,
            actor=actor,
            updated_at=iso(utc_now()),
            previous=previous,
        )
        return self._swap(pointer, expected=expected, action=action)

    def rollback(self, *, reason: str, actor: str) -> ChampionPointer:
        """Restore the previous champion."""
        current = self.require_champion()
        if not current.previous:
            raise RegistryError(
                f"model {self.model_name!r}: champion {current.version} has no previous "
                "champion to roll back to"
            )
        pointer = ChampionPointer(
            version=current.previous[0],
            sequence=current.sequence + 1,
            reason=reason,
            actor=actor,
            updated_at=iso(utc_now()),
            previous=current.previous[1:],
        )
        return self._swap(pointer, expected=current, action="rollback")

    def set_rollout(
        self, rollout: Rollout | None, *, reason: str, actor: str, expected: ChampionPointer
    ) -> ChampionPointer:
        """Start (``rollout``) or abort (``None``) a rollout next to the ``expected`` champion,
        with the same compare-and-swap as a promotion; the champion itself stays."""
        if rollout is not None:
            if rollout.candidate == expected.version:
                raise RegistryError(f"version {rollout.candidate} is already the champion")
            self.card(rollout.candidate)
        elif expected.rollout is None:
            raise RegistryError(f"model {self.model_name!r} has no rollout in progress")
        pointer = replace(
            expected,
            sequence=expected.sequence + 1,
            reason=reason,
            actor=actor,
            updated_at=iso(utc_now()),
            rollout=rollout,
            etag=None,
        )
        action = f"rollout_{rollout.mode}" if rollout else "rollout_abort"
        return self._swap(pointer, expected=expected, action=action)

    def _swap(
        self, pointer: ChampionPointer, *, expected: ChampionPointer | None, action: str
    ) -> ChampionPointer:
        if expected is None:
            etag = self.store.write(self.champion_key, pointer.to_json(), if_absent=True)
        else:
            if expected.etag is None:
                raise RegistryError("expected champion pointer has no ETag; re-read it")
            etag = self.store.write(self.champion_key, pointer.to_json(), if_match=expected.etag)
        entry = {
            "sequence": pointer.sequence,
            "action": action,
            "version": pointer.version,
            "from_version": expected.version if expected else None,
            "candidate": _candidate(pointer, expected),
            "reason": pointer.reason,
            "actor": pointer.actor,
            "at": pointer.updated_at,
        }
        self.store.write(
            f"{self._base}/history/{pointer.sequence:010d}.json",
            json.dumps(entry, indent=2).encode(),
        )
        return replace(pointer, etag=etag)

    def history(self) -> list[dict[str, Any]]:
        """Champion changes, oldest first."""
        keys = self.store.list(f"{self._base}/history/")
        return [json.loads(self.store.read(key).data) for key in keys if key.endswith(".json")]

    # --- training runs --------------------------------------------------------
    def record_run(self, run_id: str, record: Mapping[str, Any]) -> None:
        self.store.write(
            f"{self._base}/runs/{run_id}.json",
            json.dumps(record, indent=2, sort_keys=True, default=str).encode(),
            if_absent=True,
        )

    def runs(self) -> list[dict[str, Any]]:
        """Training run records, oldest first."""
        keys = self.store.list(f"{self._base}/runs/")
        return [json.loads(self.store.read(key).data) for key in keys if key.endswith(".json")]
