//! What routing a request can fail with. The table returns these; `proxy`
//! turns each into its `ProxyError` (status, `l5d-err` text, metric label).

/// Why the route table has no route for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No identifier could name the request (missing header, too few path
    /// segments, an unusable name): the client's fault.
    #[error("{0}")]
    Unidentified(String),
    /// The request's `l5d-dtab` header is not UTF-8.
    #[error("l5d-dtab is not UTF-8")]
    DtabHeaderNotUtf8,
    /// The request's `l5d-dtab` header does not parse.
    #[error("invalid l5d-dtab: {0}")]
    InvalidDtabHeader(String),
    /// The name delegates to nothing (a negative binding, a delegation
    /// error, no bound name).
    #[error("{0}")]
    NoRoute(String),
    /// The name is bound, but no endpoint can take the request (none
    /// resolved, or failure accrual marked every one dead).
    #[error("{0}")]
    NoEndpoints(String),
    /// No TLS can be set up for the destination (a strict boundPath with no
    /// matching prefix, an invalid derived name).
    #[error("{0}")]
    TlsPolicy(String),
    /// A host name only the request supplied is being resolved: the
    /// request waits for `table::names` and is routed again.
    #[error("{0}: being resolved")]
    Resolving(String),
}
