from django import forms

from accounts import tokens


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=tokens.MAX_NAME_LENGTH, help_text="What the token is for, e.g. nightly export."
    )
    days = forms.IntegerField(
        label="Valid for (days)",
        min_value=1,
        max_value=tokens.MAX_DAYS,
        initial=tokens.DEFAULT_DAYS,
    )
