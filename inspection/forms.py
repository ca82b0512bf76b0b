from django import forms

from inspection import console, services
from inspection.models import AutomationLevel, Line
from loupe.common.errors import InvalidInput


class LineChangeForm(forms.Form):
    """A supervisor's proposed level and thresholds for one line.

    Valid means it may be shown for confirmation and then applied: the thresholds are ordered,
    something changes, and a raise above assist has enough evidence or an override with a reason.
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
        required=False, label="Override the minimum of agreement items (needs a reason)"
    )
    # The line as the confirmation page showed it; see console.line_version.
    line_version = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, line: Line, agreement_items: int, **kwargs):
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
        self.agreement_items = agreement_items

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
            self.add_error("reason", "Write why you override the minimum of agreement items.")
        if level:
            shortfall = console.minimum_shortfall(self.line, level, self.agreement_items)
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
