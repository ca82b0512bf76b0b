"""Helpers of the metrics tests: read a scrape into samples that a test can ask for."""

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One /metrics answer: its families and samples."""

    def __init__(self, text: str):
        self.text = text
        self.families = list(text_string_to_metric_families(text))

    @property
    def names(self) -> set[str]:
        """Family names and sample names (x_total, x_bucket, x_sum, x_count...)."""
        names = {family.name for family in self.families}
        names.update(sample.name for family in self.families for sample in family.samples)
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
