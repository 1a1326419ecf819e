"""Load and validate the catalog TOML; every error names the file, the key and the problem."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, cast

from app.catalog.models import (
    Catalog,
    CreditPack,
    Feature,
    Interval,
    Meter,
    Plan,
    Price,
    Quota,
    Reset,
)

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_INTERVALS = {"monthly": "month", "yearly": "year"}
_RESETS = {"billing_period", "day", "never"}


class CatalogError(ValueError):
    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source, self.key, self.problem = source, key, problem


def load_catalog(path: Path) -> Catalog:
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise CatalogError(source, "(file)", "file not found; set CATALOG_PATH") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(source, "(syntax)", str(exc)) from None
    return parse_catalog(raw, source)


def parse_catalog(raw: dict[str, Any], source: str = "<catalog>") -> Catalog:
    parser = _Parser(source)
    meters = {code: parser.meter(code, body) for code, body in parser.table(raw, "meters").items()}
    if not meters:
        raise CatalogError(source, "meters", "at least one meter is required")
    features = {
        code: parser.feature(code, body)
        for code, body in parser.table(raw, "features", required=False).items()
    }
    plans = {
        slug: parser.plan(slug, body, meters, features)
        for slug, body in parser.table(raw, "plans").items()
    }
    defaults = [plan.slug for plan in plans.values() if plan.default]
    if len(defaults) != 1:
        raise CatalogError(
            source, "plans", f"exactly one plan needs default = true (found {len(defaults)})"
        )
    if not plans[defaults[0]].is_free:
        raise CatalogError(source, f"plans.{defaults[0]}", "the default plan must be free")
    packs = {
        slug: parser.pack(slug, body, meters)
        for slug, body in parser.table(raw, "credit_packs", required=False).items()
    }
    unknown = set(raw) - {"meters", "features", "plans", "credit_packs"}
    if unknown:
        raise CatalogError(source, sorted(unknown)[0], "unknown top-level key")
    return Catalog(meters=meters, plans=plans, credit_packs=packs, source=source, features=features)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> CatalogError:
        return CatalogError(self.source, key, problem)

    def table(self, raw: dict[str, Any], key: str, *, required: bool = True) -> dict[str, Any]:
        value = raw.get(key)
        if value is None:
            if required:
                raise self.fail(key, "missing table")
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        for code in value:
            if not _CODE.match(code):
                raise self.fail(f"{key}.{code}", "codes are lowercase letters, digits and _")
        return value

    def string(self, body: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = body.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{path}.{key}", "must be a non-empty string")
        return value

    def integer(self, body: dict[str, Any], key: str, path: str, *, minimum: int = 0) -> int:
        value = body.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{path}.{key}", f"must be an integer ≥ {minimum}")
        return value

    def currency(self, body: dict[str, Any], path: str) -> str:
        value = self.string(body, "currency", path, "usd").lower()
        if not re.fullmatch(r"[a-z]{3}", value):
            raise self.fail(f"{path}.currency", "must be a three-letter ISO currency code")
        return value

    def meter(self, code: str, body: Any) -> Meter:
        path = f"meters.{code}"
        if not isinstance(body, dict):
            raise self.fail(path, "must be a table")
        aggregation = body.get("aggregation", "count")
        if aggregation not in ("count", "sum"):
            raise self.fail(f"{path}.aggregation", "must be 'count' or 'sum'")
        field_name = body.get("field_name")
        if aggregation == "sum":
            field_name = self.string(body, "field_name", path)
        elif field_name is not None:
            raise self.fail(f"{path}.field_name", "only a 'sum' meter has a field_name")
        return Meter(
            code=code,
            name=self.string(body, "name", path),
            unit=self.string(body, "unit", path, "unit"),
            aggregation=aggregation,
            field_name=field_name,
        )

    def feature(self, code: str, body: Any) -> Feature:
        path = f"features.{code}"
        if not isinstance(body, dict):
            raise self.fail(path, "must be a table with a name")
        unknown = set(body) - {"name", "description"}
        if unknown:
            raise self.fail(f"{path}.{sorted(unknown)[0]}", "unknown key (name, description)")
        description = body.get("description", "")
        if not isinstance(description, str):
            raise self.fail(f"{path}.description", "must be a string")
        return Feature(code=code, name=self.string(body, "name", path), description=description)

    def plan_features(
        self, body: dict[str, Any], path: str, features: dict[str, Feature]
    ) -> tuple[tuple[str, ...], frozenset[str]]:
        """(display bullets, features turned on). `features` is a table of declared feature
        codes to true or false (a declared feature left out is false); `highlights` a list
        of strings. The older `features = [...]` list is read as the bullets."""
        raw = body.get("features", {})
        highlights = body.get("highlights")
        if isinstance(raw, list) and highlights is None:
            highlights, raw = raw, {}
        if highlights is None:
            highlights = []
        if not isinstance(highlights, list) or not all(isinstance(h, str) for h in highlights):
            raise self.fail(f"{path}.highlights", "must be a list of strings")
        if not isinstance(raw, dict):
            raise self.fail(f"{path}.features", "must be a table of feature = true or false")
        enabled = set()
        for code, value in raw.items():
            if code not in features:
                declared = ", ".join(sorted(features)) or "none"
                raise self.fail(
                    f"{path}.features.{code}",
                    f"unknown feature; declare it under [features.{code}] (declared: {declared})",
                )
            if not isinstance(value, bool):
                raise self.fail(f"{path}.features.{code}", "must be true or false")
            if value:
                enabled.add(code)
        return tuple(highlights), frozenset(enabled)

    def plan(
        self,
        slug: str,
        body: Any,
        meters: dict[str, Meter],
        features: dict[str, Feature] | None = None,
    ) -> Plan:
        path = f"plans.{slug}"
        if not isinstance(body, dict):
            raise self.fail(path, "must be a table")
        prices_raw = body.get("prices", {})
        if not isinstance(prices_raw, dict) or not prices_raw:
            raise self.fail(f"{path}.prices", "needs monthly and/or yearly prices")
        prices: dict[Interval, Price] = {}
        for name, price_body in prices_raw.items():
            interval = _INTERVALS.get(name)
            price_path = f"{path}.prices.{name}"
            if interval is None:
                raise self.fail(price_path, "price keys are 'monthly' or 'yearly'")
            if not isinstance(price_body, dict):
                raise self.fail(price_path, "must be a table with amount and currency")
            prices[cast(Interval, interval)] = Price(
                interval=cast(Interval, interval),
                amount=self.integer(price_body, "amount", price_path),
                currency=self.currency(price_body, price_path),
            )
        if len({price.currency for price in prices.values()}) > 1:
            raise self.fail(f"{path}.prices", "all prices of a plan share one currency")
        quotas_raw = body.get("quotas", {})
        if not isinstance(quotas_raw, dict):
            raise self.fail(f"{path}.quotas", "must be a table")
        quotas: dict[str, Quota] = {}
        for code, quota_body in quotas_raw.items():
            quota_path = f"{path}.quotas.{code}"
            if code not in meters:
                raise self.fail(quota_path, "unknown meter")
            if not isinstance(quota_body, dict):
                raise self.fail(quota_path, "must be a table with included and reset")
            included_raw = quota_body.get("included")
            if included_raw == "unlimited":
                included: int | None = None
            else:
                included = self.integer(quota_body, "included", quota_path)
            reset = quota_body.get("reset", "billing_period")
            if reset not in _RESETS:
                raise self.fail(f"{quota_path}.reset", "must be billing_period, day or never")
            overage = quota_body.get("overage")
            if overage is not None:
                overage = self.integer(quota_body, "overage", quota_path, minimum=1)
                if included is None:
                    raise self.fail(f"{quota_path}.overage", "an unlimited quota has no overage")
                if all(price.amount == 0 for price in prices.values()):
                    raise self.fail(f"{quota_path}.overage", "only a paid plan can bill overage")
            quotas[code] = Quota(
                meter_code=code,
                included=included,
                reset=cast(Reset, reset),
                overage_unit_amount=overage,
            )
        for code in meters:
            # A meter a plan does not mention has no included quota (credits only).
            quotas.setdefault(code, Quota(meter_code=code, included=0, reset="billing_period"))
        trial_days = self.integer(body, "trial_days", path) if "trial_days" in body else 0
        highlights, enabled = self.plan_features(body, path, features or {})
        return Plan(
            slug=slug,
            name=self.string(body, "name", path),
            description=str(body.get("description", "")),
            prices=prices,
            quotas=quotas,
            trial_days=trial_days,
            default=bool(body.get("default", False)),
            public=bool(body.get("public", True)),
            highlights=highlights,
            features=enabled,
        )

    def pack(self, slug: str, body: Any, meters: dict[str, Meter]) -> CreditPack:
        path = f"credit_packs.{slug}"
        if not isinstance(body, dict):
            raise self.fail(path, "must be a table")
        meter = self.string(body, "meter", path)
        if meter not in meters:
            raise self.fail(f"{path}.meter", f"unknown meter {meter!r}")
        expires = body.get("expires_after_days")
        if expires is not None:
            expires = self.integer(body, "expires_after_days", path, minimum=1)
        return CreditPack(
            slug=slug,
            name=self.string(body, "name", path),
            meter_code=meter,
            credits=self.integer(body, "credits", path, minimum=1),
            amount=self.integer(body, "amount", path, minimum=1),
            currency=self.currency(body, path),
            expires_after_days=expires,
        )


_ = Reset  # re-exported type used in casts above
