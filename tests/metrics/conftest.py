"""Helpers of the metrics tests: read a scrape into samples that a test can ask for."""

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One /metrics answer: its families and samples."""

    def __init__(self, text: str):
        self.text = text
        self.families = list(text_string_to_metric_families(text))

    @property
    def names(self) -> set[str]:
        """Family names and the series names their type declares (x_total of a counter;
        x_bucket, x_sum, x_count of a histogram), whether or not a sample came yet."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names = set()
        for family in self.families:
            names.add(family.name)
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
            names.update(sample.name for sample in family.samples)
        return names

    def samples(self, name: str, **labels) -> list:
        return [
            sample
            for family in self.families
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        ]

    def value(self, name: str, **labels) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
        return sum(sample.value for sample in self.samples(name, **labels))
