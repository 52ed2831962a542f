"""The one registry of the error codes this API answers with: status, code, what it means.

Used by the OpenAPI document (interfaces.http.openapi), the `responses=` of the routers
(schemas.common.ERRORS) and checked against the source and README.md by
tests/e2e/test_error_codes_contract.py: a code raised anywhere must be listed here (or in
`NOT_RETURNED`, with the reason no client can receive it), and a code listed here must be raised
somewhere. A code may be listed under more than one status (`API_KEY_REVOKED`: 401 when the key
is presented, 409 when it is revoked again).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    status: int
    code: str
    meaning: str


def _codes(status: int, *pairs: tuple[str, str]) -> tuple[ErrorCode, ...]:
    return tuple(ErrorCode(status, code, meaning) for code, meaning in pairs)


#: A short reason phrase per status, the lead of each error response's description.
STATUS_TITLES: dict[int, str] = {
    400: "Bad request: the request itself (URL, headers, query, body syntax) cannot be used",
    401: "Unauthenticated: credentials are missing, wrong, expired or revoked",
    403: "Forbidden: the caller may see the resource but lacks the permission",
    404: "Not found (another organisation's resources are always 404, never 403)",
    405: "Method not allowed on this path (see `Allow`)",
    409: "Conflict with the current state",
    412: "Precondition failed: `If-Match` does not name the latest version",
    413: "Payload too large: the body exceeds `PROMPTFORGE_MAX_BODY_BYTES`",
    422: "The body is well-formed but breaks a rule",
    429: "Too many requests (see `Retry-After`)",
    500: "Internal error: quote the `request_id` when reporting it",
    503: "Temporarily unavailable (see `Retry-After`)",
}

ERROR_CODES: tuple[ErrorCode, ...] = (
    *_codes(
        400,
        ("BAD_REQUEST", "the request cannot be read (invalid `Content-Length`, a body that is not UTF-8)"),
        ("MALFORMED_JSON", "the body is not valid JSON"),
        ("INVALID_PARAMETER", "a query, path or header parameter is invalid (or two of them contradict)"),
        ("INVALID_CURSOR", "the pagination cursor is invalid or belongs to another listing"),
        ("INVALID_SORT", "unknown sort order"),
        ("INVALID_TIMESTAMP", "a time is not RFC 3339 with an offset"),
        ("INVALID_MIN_POSITION", "`min_position` is ahead of the event log"),
        ("INVALID_IDEMPOTENCY_KEY", "`Idempotency-Key` is not 1..255 visible ASCII characters"),
        ("INVALID_REQUEST_TARGET", "the URL contains control characters"),
    ),
    *_codes(
        401,
        ("UNAUTHENTICATED", "no bearer token"),
        ("INVALID_TOKEN", "the token is malformed, forged or of the wrong kind"),
        ("TOKEN_EXPIRED", "the access or refresh token has expired"),
        ("SESSION_REVOKED", "the token's session was logged out, revoked or cut by logout-all"),
        ("INVALID_CREDENTIALS", "wrong email or password"),
        ("REFRESH_TOKEN_REUSED", "a used refresh token was presented again: the session is now revoked"),
        ("INVALID_API_KEY", "unknown or wrong API key"),
        ("API_KEY_REVOKED", "the API key, or (for a key minted by a key) the key that issued it, has been revoked"),
        ("API_KEY_DISABLED", "the API key's issuer is no longer a member of its organisation"),
    ),
    *_codes(
        403,
        ("PERMISSION_DENIED", "the caller lacks the permission this route needs"),
        ("PERMISSION_ESCALATION", "an API key cannot carry permissions its creator lacks"),
        ("OWNER_ROLE_REQUIRED", "only owners grant, change or remove the owner role"),
        ("USER_TOKEN_REQUIRED", "the route needs a user's access token, not an API key (keys cannot issue keys)"),
        ("SELF_APPROVAL", "the requester (or a key they issued) cannot review their own request"),
        ("APPROVER_ROLE_REQUIRED", "the label's review policy does not let this role approve"),
        ("NOT_THE_REQUESTER", "only the requester may withdraw a request"),
    ),
    *_codes(
        404,
        ("NOT_FOUND", "no such route"),
        ("ORG_NOT_FOUND", "no such organisation (or not yours)"),
        ("PROMPT_NOT_FOUND", "no such prompt in this organisation"),
        ("VERSION_NOT_FOUND", "no such version of the prompt"),
        ("LABEL_NOT_FOUND", "the label is not set on the prompt"),
        ("MEMBER_NOT_FOUND", "no such member of the organisation"),
        ("USER_NOT_FOUND", "no registered user with that email or id"),
        ("API_KEY_NOT_FOUND", "no such API key in this organisation"),
        ("REVIEW_NOT_FOUND", "no such review request in this organisation"),
        ("RELEASE_NOT_FOUND", "no such release in this organisation"),
        ("WEBHOOK_NOT_FOUND", "no such webhook in this organisation (or it was deleted)"),
        ("DELIVERY_NOT_FOUND", "no such delivery of this webhook"),
    ),
    *_codes(405, ("METHOD_NOT_ALLOWED", "the path exists but not with this method")),
    *_codes(
        409,
        ("PROMPT_VERSION_CONFLICT", "`base_version` is not the latest version (details name the current one)"),
        ("LABEL_CONFLICT", "the label does not point at `expected_version`"),
        ("PROMPT_NAME_TAKEN", "a prompt with this name exists in the organisation"),
        ("EMAIL_TAKEN", "the email is already registered"),
        ("MEMBER_EXISTS", "the user is already a member"),
        ("LAST_OWNER", "the last owner cannot be demoted or removed"),
        ("PROMPT_ARCHIVED", "the prompt is archived (restore it first)"),
        ("PROMPT_NOT_ARCHIVED", "the prompt is not archived"),
        ("API_KEY_REVOKED", "the API key is already revoked"),
        ("IDEMPOTENCY_KEY_REUSED", "the `Idempotency-Key` was used with a different request"),
        ("PLAN_LIMIT_EXCEEDED", "the organisation's plan allows no more of this resource"),
        ("PLAN_DOWNGRADE_BLOCKED", "current usage exceeds the limits of the requested plan"),
        ("CONCURRENT_MODIFICATION", "too much contention on the same resource; retry"),
        ("LABEL_PROTECTED", "the label is protected: request its change at …/review-requests (details: review_requests)"),
        ("LABEL_NOT_PROTECTED", "a review was requested for a label that is not protected: move it directly"),
        ("REVIEW_NOT_OPEN", "the review request was already applied, rejected, withdrawn or superseded"),
        ("ALREADY_APPROVED", "this person already approved the request"),
        ("REVIEW_SUPERSEDED", "a label moved since the request: nothing was applied, the request is superseded"),
        ("RELEASE_CONFLICT", "labels moved since the expectations: nothing was applied (details: conflicts)"),
        ("RELEASE_ROLLED_BACK", "the release was already rolled back"),
    ),
    *_codes(412, ("PRECONDITION_FAILED", "`If-Match` names another prompt or a stale version")),
    *_codes(413, ("PAYLOAD_TOO_LARGE", "the body exceeds the size limit")),
    *_codes(
        422,
        ("VALIDATION_ERROR", "the body does not match the schema (details list where and why)"),
        ("BASE_VERSION_REQUIRED", "a revision needs `base_version` or an `If-Match` header"),
        ("EMPTY_PATCH", "the patch changes nothing: give at least one field"),
        ("WEAK_PASSWORD", "the password breaks the policy (at least 12 characters)"),
        ("INVALID_NAME", "the name is empty, too long or contains control characters or '/'"),
        ("INVALID_TEMPLATE", "the template is empty, too long, not storable text, or not a valid template of its "
                             "format (details: problem, tag, offset, line)"),
        ("INVALID_TEMPLATE_FORMAT", "template_format is not `mustache` or `plain`"),
        ("INVALID_PROMPT_TYPE", "type is not `text` or `chat`"),
        ("PROMPT_TYPE_MISMATCH", "a text prompt got messages, or a chat prompt a template (the type is fixed)"),
        ("INVALID_MESSAGES", "a chat prompt's messages are malformed (details: index, problem)"),
        ("DEPENDENCY_NOT_FOUND", "an included prompt, label or version does not exist in this organisation"),
        ("COMPOSITION_CYCLE", "includes form a cycle (details: path)"),
        ("COMPOSITION_TOO_DEEP", "includes nest deeper than five levels (details: path)"),
        ("COMPOSITION_TYPE_MISMATCH", "a chat prompt was included (only text prompts can be)"),
        ("COMPOSITION_FORMAT_MISMATCH", "an included plain prompt's text would read as includes in the including "
                                        "prompt's format"),
        ("INVALID_VARIABLES", "variable names must be identifiers (and few enough)"),
        ("VARIABLES_MISMATCH", "declared variables do not match the template's variables"),
        ("INVALID_TAGS", "too many tags, or an invalid one"),
        ("INVALID_LABEL", "the label name is invalid"),
        ("LABEL_RESERVED", "`latest` is automatic and cannot be set"),
        ("INVALID_MESSAGE", "the commit message is too long or not printable"),
        ("INVALID_MODEL_CONFIG", "`model_config` is not a plain JSON object within the size limit"),
        ("UNKNOWN_ROLE", "no such role"),
        ("UNKNOWN_PLAN", "no such plan"),
        ("UNKNOWN_PERMISSION", "no such permission"),
        ("RENDER_VARIABLES_MISMATCH", "rendering is missing variables or got unknown ones (details name them)"),
        ("RENDER_TOO_LARGE", "the rendered text would exceed the size limit"),
        ("INVALID_SPLIT", "a traffic split is 2..10 {version, weight} entries, weights summing to 100"),
        ("INVALID_WEBHOOK_URL", "a webhook URL is an absolute http(s) URL without credentials, to an allowed host"),
        ("INVALID_WEBHOOK_EVENTS", "webhook events are change-feed types (details list the allowed ones) or \"*\""),
        ("INVALID_MOVES", "a release's moves are malformed (details: index)"),
        ("INVALID_REVIEW_POLICY", "a review policy is {approvals 1..5, approver_roles} of a protected label"),
        ("EXPECTED_VERSION_REQUIRED", "a review request or release move needs expected_version (0: unset)"),
    ),
    *_codes(
        429,
        ("RATE_LIMITED", "the per-key, per-user, per-organisation or per-address quota is spent"),
        ("TOO_MANY_LOGIN_ATTEMPTS", "too many login attempts for the account from this address, from this address, "
                                    "or for the account"),
    ),
    *_codes(500, ("INTERNAL_ERROR", "an unexpected failure (logged with the request id)")),
    *_codes(
        503,
        ("READ_MODEL_LAGGING", "the read model did not reach `min_position` in time"),
        ("STORAGE_UNAVAILABLE", "the event store or read-model database is unreachable"),
        ("SEARCH_UNAVAILABLE", "semantic search is unavailable (keyword search still works)"),
        ("VECTOR_PENDING", "the prompt has not been embedded yet"),
    ),
)

#: Codes that occur in the source but never reach a client, and why. Kept here so that the
#: contract test can tell a new code (which must be registered) from a known internal one.
NOT_RETURNED: dict[str, str] = {
    "SESSION_NOT_FOUND": "logout acts on the caller's own session, already verified by authentication",
    "API_KEY_NOT_RESERVED": "invariant guard: an unrevoked key always holds a slot (revoking twice is API_KEY_REVOKED)",
    "INVALID_SETTINGS": "configuration error at start-up (event store URL), never an HTTP answer",
    "WEBHOOK_DELETED": "invariant guard: the application answers WEBHOOK_NOT_FOUND for a deleted webhook",
}

STATUSES: tuple[int, ...] = tuple(sorted({e.status for e in ERROR_CODES}))
CODES: frozenset[str] = frozenset(e.code for e in ERROR_CODES)


def codes_for(status: int) -> tuple[ErrorCode, ...]:
    return tuple(e for e in ERROR_CODES if e.status == status)


def statuses_of(code: str) -> tuple[int, ...]:
    return tuple(e.status for e in ERROR_CODES if e.code == code)


def summary(status: int) -> str:
    """One line: the reason and the codes of that status."""
    return f"{STATUS_TITLES[status]}. Codes: " + ", ".join(f"`{e.code}`" for e in codes_for(status)) + "."


def describe(status: int) -> str:
    """Markdown for an error response: the reason, then each code of that status and its meaning."""
    lines = [f"{STATUS_TITLES[status]}.", "", "Error codes:", ""]
    lines += [f"- `{e.code}`: {e.meaning}" for e in codes_for(status)]
    return "\n".join(lines)
