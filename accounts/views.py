"""The API tokens page: each signed-in user lists, creates and revokes their own tokens."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import tokens
from accounts.forms import ApiTokenForm


@require_http_methods(["GET", "POST"])
def api_tokens(request):
    form = ApiTokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        token, raw = tokens.issue_api_token(
            user=request.user,
            name=form.cleaned_data["name"],
            expires_at=tokens.expiry_in_days(form.cleaned_data["days"]),
        )
        # rendered, not redirected: the raw token exists only in this answer
        new_token = {"token": token, "raw": raw}
        form = ApiTokenForm()
    response = render(
        request,
        "accounts/api_tokens.html",
        {
            "form": form,
            "new_token": new_token,
            "tokens": tokens.tokens_of(request.user),
        },
        status=400 if form.errors else 200,
    )
    if new_token:
        response["Cache-Control"] = "no-store"  # no copy of the token in the browser's cache
    return response


@require_POST
def revoke_api_token(request, pk: int):
    token = get_object_or_404(tokens.tokens_of(request.user), pk=pk)
    if tokens.revoke_api_token(token=token):
        messages.success(request, f"Token {token.name} ({token.token_prefix}…) revoked.")
    return redirect("accounts:api-tokens")
