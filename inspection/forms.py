from django import forms

from inspection import console, services
from inspection.models import AutomationLevel, Line, Station
from loupe.common.errors import InvalidInput


class LineChangeForm(forms.Form):
    """A supervisor's proposed level and thresholds for one line.

    Valid means it may be shown for confirmation and then applied: the thresholds are ordered,
    something changes, and a raise above assist passes the evidence gate or is overridden with
    a reason.
    """

    automation_level = forms.ChoiceField(choices=AutomationLevel.choices, label="Automation level")
    accept_threshold = forms.FloatField(
        min_value=0,
        max_value=1,
        label="Accept when p(defect) ≤",
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
    reject_threshold = forms.FloatField(
        min_value=0,
        max_value=1,
        label="Reject when p(defect) ≥",
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
    reason = forms.CharField(
        required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2})
    )
    override = forms.BooleanField(
        required=False, label="Override the evidence rules (needs a reason)"
    )
    # The line as the confirmation page showed it; see console.line_version.
    line_version = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, line: Line, evidence: console.Evidence, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "automation_level": line.automation_level,
                "accept_threshold": line.accept_threshold,
                "reject_threshold": line.reject_threshold,
            },
        )
        super().__init__(*args, **kwargs)
        self.line = line
        self.evidence = evidence

    def clean(self):
        data = super().clean()
        level = data.get("automation_level")
        accept, reject = data.get("accept_threshold"), data.get("reject_threshold")
        override, reason = data.get("override"), data.get("reason", "").strip()
        if accept is not None and reject is not None:
            try:
                services.validate_thresholds(accept, reject)
            except InvalidInput as error:
                self.add_error(None, f"Invalid thresholds: {error.message}.")
        if override and not reason:
            self.add_error("reason", "Write why you override the evidence rules.")
        if level:
            shortfall = console.minimum_shortfall(self.line, level, self.evidence, reject)
            if shortfall and not override:
                self.add_error(
                    "automation_level",
                    f"{shortfall} Tick the override and write a reason to go ahead anyway.",
                )
        unchanged = (level, accept, reject) == (
            self.line.automation_level,
            self.line.accept_threshold,
            self.line.reject_threshold,
        )
        if unchanged and not self.errors:
            raise forms.ValidationError("Nothing to change: these are the line's settings now.")
        return data


class EvidenceRulesForm(forms.Form):
    """A line's audit rate and the evidence gate's two bounds, as percentages."""

    audit_pct = forms.FloatField(
        min_value=0,
        max_value=100,
        label="Audit and blind sample, %",
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
    agreement_target_pct = forms.FloatField(
        min_value=0,
        max_value=100,
        label="Agreement target (lower bound), %",
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
    escape_limit_pct = forms.FloatField(
        min_value=0,
        max_value=100,
        label="Miss-rate limit (upper bound), %",
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
    reason = forms.CharField(
        required=False, max_length=1000, widget=forms.TextInput(attrs={"size": 40})
    )

    @classmethod
    def for_line(cls, line: Line, data=None) -> "EvidenceRulesForm":
        return cls(
            data,
            initial={
                "audit_pct": round(100 * line.audit_fraction, 4),
                "agreement_target_pct": round(100 * line.agreement_target, 4),
                "escape_limit_pct": round(100 * line.escape_rate_limit, 4),
            },
        )

    def line_settings(self) -> dict:
        data = self.cleaned_data
        return {
            "audit_fraction": data["audit_pct"] / 100,
            "agreement_target": data["agreement_target_pct"] / 100,
            "escape_rate_limit": data["escape_limit_pct"] / 100,
        }


class ReportEscapeForm(forms.Form):
    """A supervisor's report of an escape found after the line, by the item's serial."""

    serial = forms.CharField(max_length=128, label="Serial (the station's item id)")
    station = forms.ModelChoiceField(
        queryset=Station.objects.none(),
        required=False,
        empty_label="any station",
        help_text="Needed only when several stations inspected that serial.",
    )
    note = forms.CharField(
        max_length=2000,
        label="What was found",
        widget=forms.TextInput(attrs={"size": 50, "placeholder": "customer return, failed test…"}),
    )

    def __init__(self, *args, line: Line, stations=None, **kwargs):
        super().__init__(*args, **kwargs)
        # the candidates of an ambiguous serial, else every station of the line
        field = self.fields["station"]
        field.queryset = (
            Station.objects.filter(pk__in=[s.pk for s in stations])
            if stations
            else line.stations.all()
        )
        field.label_from_instance = lambda station: station.name
