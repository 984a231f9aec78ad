//! The resource kinds this server serves, and the mapping from request paths
//! to them (the apiserver's REST routes for list, get and watch).

/// One served resource type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Kind {
    /// `kind` of one object, e.g. `EndpointSlice`.
    pub kind: &'static str,
    /// `kind` of the list, e.g. `EndpointSliceList`.
    pub list_kind: &'static str,
    /// `apiVersion` of objects and lists, e.g. `discovery.k8s.io/v1`.
    pub api_version: &'static str,
    /// API group ("" for the core group), used in NotFound details.
    pub group: &'static str,
    /// The URL resource name, e.g. `endpointslices`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    /// The real strategy sets `metadata.generation` (1 on create, +1 on a
    /// change outside `metadata`): EndpointSlices do; Services and
    /// ConfigMaps carry no generation.
    pub has_generation: bool,
}

impl Kind {
    /// `services` or `endpointslices.discovery.k8s.io`, as error messages
    /// name a resource (`schema.GroupResource.String()`).
    pub(crate) fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

pub(crate) static SERVICE: Kind = Kind {
    kind: "Service",
    list_kind: "ServiceList",
    api_version: "v1",
    group: "",
    plural: "services",
    singular: "service",
    short_names: &["svc"],
    has_generation: false,
};

pub(crate) static ENDPOINT_SLICE: Kind = Kind {
    kind: "EndpointSlice",
    list_kind: "EndpointSliceList",
    api_version: "discovery.k8s.io/v1",
    group: "discovery.k8s.io",
    plural: "endpointslices",
    singular: "endpointslice",
    short_names: &[],
    has_generation: true,
};

pub(crate) static CONFIG_MAP: Kind = Kind {
    kind: "ConfigMap",
    list_kind: "ConfigMapList",
    api_version: "v1",
    group: "",
    plural: "configmaps",
    singular: "configmap",
    short_names: &["cm"],
    has_generation: false,
};

pub(crate) static ALL_KINDS: [&Kind; 3] = [&SERVICE, &ENDPOINT_SLICE, &CONFIG_MAP];

/// A kind by its `kind` (`Service`) or its plural (`services`).
pub(crate) fn kind_named(name: &str) -> Option<&'static Kind> {
    ALL_KINDS.iter().copied().find(|kind| kind.kind == name || kind.plural == name)
}

/// A kind by an object's `apiVersion` and `kind`.
pub(crate) fn kind_of(api_version: &str, kind: &str) -> Option<&'static Kind> {
    ALL_KINDS.iter().copied().find(|k| k.api_version == api_version && k.kind == kind)
}

/// What a request path addresses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// A collection: every namespace (`namespace: None`) or one.
    Collection {
        kind: &'static Kind,
        namespace: Option<String>,
        /// The legacy `/watch/` prefix: a watch whatever the query says.
        watch_prefix: bool,
    },
    /// One named object.
    Object {
        kind: &'static Kind,
        namespace: String,
        name: String,
        watch_prefix: bool,
    },
    Version,
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: the named groups.
    Groups,
    /// `/api/v1` or `/apis/<group>/<version>`: the resources of one group version.
    Resources {
        group_version: &'static str,
    },
    NotFound,
}

/// Maps a (percent-decoded) path to what it addresses.
pub(crate) fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["api", "v1"] => Route::Resources { group_version: "v1" },
        ["apis", "discovery.k8s.io", "v1"] => Route::Resources { group_version: "discovery.k8s.io/v1" },
        ["api", "v1", rest @ ..] => resource_route("v1", rest),
        ["apis", group, version, rest @ ..] => match (*group, *version) {
            ("discovery.k8s.io", "v1") => resource_route("discovery.k8s.io/v1", rest),
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

/// The part after the group version: `[watch/][namespaces/<ns>/]<plural>[/<name>]`.
fn resource_route(api_version: &str, rest: &[&str]) -> Route {
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let known = |plural: &str| ALL_KINDS.iter().copied().find(|k| k.api_version == api_version && k.plural == plural);
    let valid_name = |name: &str| !name.is_empty() && name != "." && name != "..";
    match rest {
        [plural] => match known(plural) {
            Some(kind) => Route::Collection { kind, namespace: None, watch_prefix },
            None => Route::NotFound,
        },
        ["namespaces", namespace, plural] if valid_name(namespace) => match known(plural) {
            Some(kind) => Route::Collection { kind, namespace: Some(namespace.to_string()), watch_prefix },
            None => Route::NotFound,
        },
        ["namespaces", namespace, plural, name] if valid_name(namespace) && valid_name(name) => match known(plural) {
            Some(kind) => {
                Route::Object { kind, namespace: namespace.to_string(), name: name.to_string(), watch_prefix }
            }
            None => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_served_paths() {
        assert_eq!(
            route("/api/v1/services"),
            Route::Collection { kind: &SERVICE, namespace: None, watch_prefix: false }
        );
        assert_eq!(
            route("/api/v1/namespaces/prod/configmaps"),
            Route::Collection { kind: &CONFIG_MAP, namespace: Some("prod".into()), watch_prefix: false }
        );
        assert_eq!(
            route("/api/v1/namespaces/prod/services/web"),
            Route::Object { kind: &SERVICE, namespace: "prod".into(), name: "web".into(), watch_prefix: false }
        );
        assert_eq!(
            route("/apis/discovery.k8s.io/v1/endpointslices"),
            Route::Collection { kind: &ENDPOINT_SLICE, namespace: None, watch_prefix: false }
        );
        assert_eq!(
            route("/apis/discovery.k8s.io/v1/watch/namespaces/prod/endpointslices"),
            Route::Collection { kind: &ENDPOINT_SLICE, namespace: Some("prod".into()), watch_prefix: true }
        );
        assert_eq!(route("/version"), Route::Version);
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(route("/apis"), Route::Groups);
        assert_eq!(route("/api/v1"), Route::Resources { group_version: "v1" });
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/",
            "",
            "/api/v2/services",
            "/api/v1/endpointslices",
            "/apis/discovery.k8s.io/v1/services",
            "/apis/discovery.k8s.io/v1beta1/endpointslices",
            "/api/v1/namespaces//services",
            "/api/v1/namespaces/a/services/b/c",
            "/api/v1/pods",
            "/api/v1/namespaces/../services",
        ] {
            assert_eq!(route(path), Route::NotFound, "{path}");
        }
    }
}
