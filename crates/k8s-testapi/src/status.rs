//! `Status` objects: the body of every error response and of a watch's
//! `ERROR` event, shaped as apimachinery's `errors.New*` make them.

use crate::kinds::Kind;
use serde_json::{json, Value};

/// An error answer: an HTTP status code and the `Status` object sent with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub status: Value,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: &str) -> ApiError {
        ApiError { code, status: failure(code, reason, message, None) }
    }

    pub(crate) fn reason_phrase(&self) -> &'static str {
        reason_phrase(self.code)
    }
}

fn failure(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

/// 404 for a path no route serves (`errors.NewNotFound` of the path, as the
/// apiserver's not-found handler answers under /api and /apis).
pub(crate) fn path_not_found() -> ApiError {
    ApiError {
        code: 404,
        status: failure(404, "NotFound", "the server could not find the requested resource", Some(json!({}))),
    }
}

/// 404 for a missing object: `services "web" not found`, with `details`.
pub(crate) fn object_not_found(kind: &Kind, name: &str) -> ApiError {
    let mut details = json!({"name": name, "kind": kind.plural});
    if !kind.group.is_empty() {
        details["group"] = json!(kind.group);
    }
    let message = format!("{} {name:?} not found", kind.qualified_plural());
    ApiError { code: 404, status: failure(404, "NotFound", &message, Some(details)) }
}

pub(crate) fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

pub(crate) fn bad_request(message: &str) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

pub(crate) fn method_not_allowed(method: &str) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        &format!("the server does not allow this method on the requested resource ({method})"),
    )
}

/// 422 for invalid list/watch options (`errors.NewInvalid` of `ListOptions`).
pub(crate) fn invalid_list_options(field: &str, message: &str) -> ApiError {
    let text = format!("ListOptions.meta.k8s.io \"\" is invalid: {field}: {message}");
    let details = json!({
        "group": "meta.k8s.io",
        "kind": "ListOptions",
        "causes": [{"reason": "FieldValueForbidden", "message": message, "field": field}],
    });
    ApiError { code: 422, status: failure(422, "Invalid", &text, Some(details)) }
}

/// 410 Expired (`errors.NewResourceExpired`).
pub(crate) fn expired(message: &str) -> ApiError {
    ApiError::new(410, "Expired", message)
}

/// The 410 a watch gets (as an ERROR event) from a compacted resourceVersion.
pub(crate) fn watch_too_old(requested: u64, oldest_available: u64) -> ApiError {
    expired(&format!("too old resource version: {requested} ({oldest_available})"))
}

/// `storage.NewTooLargeResourceVersionError`: 504 Timeout, retry after 1 s.
pub(crate) fn too_large_resource_version(requested: u64, current: u64) -> ApiError {
    let message = format!("Too large resource version: {requested}, current: {current}");
    let details = json!({
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1,
    });
    ApiError { code: 504, status: failure(504, "Timeout", &message, Some(details)) }
}

pub(crate) fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{ENDPOINT_SLICE, SERVICE};

    #[test]
    fn not_found_names_the_resource_like_the_apiserver() {
        let service = object_not_found(&SERVICE, "web");
        assert_eq!(service.code, 404);
        assert_eq!(service.status["message"], "services \"web\" not found");
        assert_eq!(service.status["details"], json!({"name": "web", "kind": "services"}));
        let slice = object_not_found(&ENDPOINT_SLICE, "web-1");
        assert_eq!(slice.status["message"], "endpointslices.discovery.k8s.io \"web-1\" not found");
        assert_eq!(slice.status["details"]["group"], "discovery.k8s.io");
    }

    #[test]
    fn expired_watch_status() {
        let error = watch_too_old(3, 9);
        assert_eq!(
            error.status,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "too old resource version: 3 (9)", "reason": "Expired", "code": 410})
        );
    }
}
