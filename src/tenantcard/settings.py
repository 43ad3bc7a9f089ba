"""Settings of the HTTP services (operator, identity provider): pydantic-settings, built by the caller and handed
to ``create_app(settings)``, never read at import time.

Sources, highest first: constructor arguments, environment variables (each service's ``env_prefix``), a TOML
file named by ``toml_file`` (the CLI's ``--config``), defaults.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


class SettingsError(ValueError):
    """Settings that cannot be read or do not validate; the message names the first problem, never a value."""


class ServiceSettings(BaseSettings):
    """Base of a service's settings: a subclass adds its fields and its ``env_prefix``."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    toml_file: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        values: dict[str, Any] = init_settings()
        toml = values.get("toml_file")
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml)))
        return tuple(sources)

    @classmethod
    def load(cls, config: Path | None = None, **overrides: Any) -> Self:
        """Settings from ``config`` (TOML), the environment and ``overrides`` (None values are ignored);
        SettingsError when the file cannot be read or a value does not validate."""
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(toml_file=config, **given)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "settings"
            raise SettingsError(f"bad settings: {exc.error_count()} error(s): {where}: {first['msg']}") from exc
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"cannot read settings: {exc}") from exc
