"""Scraping a real /metrics endpoint as Prometheus does, parsed with prometheus_client."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

SCRAPE_SECONDS = 30.0


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]   # family name -> counter, gauge, summary

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None."""
        return self.samples.get((name, frozenset(labels.items())))

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=SCRAPE_SECONDS) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text = answer.read().decode()
    families = list(text_string_to_metric_families(text))
    return Scrape(text, {(s.name, frozenset(s.labels.items())): s.value
                         for f in families for s in f.samples},
                  {f.name: f.type for f in families})
