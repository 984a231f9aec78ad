//! `labelSelector` and `fieldSelector` as the apiserver parses and applies
//! them (apimachinery `labels.Parse`, `fields.ParseSelector`).
//!
//! Labels: comma-separated requirements, all of which must hold: `k=v`,
//! `k==v`, `k!=v` (also true when `k` is absent), `k` (exists), `!k` (absent),
//! `k in (a,b)`, `k notin (a,b)` (also true when absent), `k>n`, `k<n`.
//! Fields: `k=v`, `k==v`, `k!=v`, comma = AND, `\` escapes `,` `=` `\`;
//! only `metadata.name` and `metadata.namespace` are supported, as for
//! Services, EndpointSlices and ConfigMaps on the real server.

use serde_json::Value;
use std::fmt;

/// A selector the server cannot parse: answered with 400 BadRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelectorError(pub String);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelTest {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    GreaterThan(i64),
    LessThan(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelRequirement {
    key: String,
    test: LabelTest,
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    pub(crate) fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level_commas(text)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(SelectorError(format!("unable to parse requirement: empty requirement in {text:?}")));
            }
            requirements.push(parse_label_requirement(part)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|map| map.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|requirement| {
            let value = label(&requirement.key);
            match &requirement.test {
                LabelTest::Equals(expected) => value == Some(expected.as_str()),
                LabelTest::NotEquals(unwanted) => value != Some(unwanted.as_str()),
                LabelTest::In(set) => value.is_some_and(|v| set.iter().any(|s| s == v)),
                LabelTest::NotIn(set) => !value.is_some_and(|v| set.iter().any(|s| s == v)),
                LabelTest::Exists => value.is_some(),
                LabelTest::DoesNotExist => value.is_none(),
                LabelTest::GreaterThan(bound) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|n| n > *bound),
                LabelTest::LessThan(bound) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|n| n < *bound),
            }
        })
    }
}

/// Splits at commas that are not inside `( … )`.
fn split_top_level_commas(text: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| SelectorError(format!("unable to parse requirement: unbalanced ')' in {text:?}")))?
            }
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!("unable to parse requirement: unbalanced '(' in {text:?}")));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_label_requirement(part: &str) -> Result<LabelRequirement, SelectorError> {
    if let Some(rest) = part.strip_prefix('!') {
        let key = rest.trim();
        validate_key(key)?;
        return Ok(LabelRequirement { key: key.to_string(), test: LabelTest::DoesNotExist });
    }
    let key_end = part.find(|c: char| c.is_whitespace() || "=!<>(".contains(c)).unwrap_or(part.len());
    let key = &part[..key_end];
    validate_key(key)?;
    let rest = part[key_end..].trim_start();
    let test = if rest.is_empty() {
        LabelTest::Exists
    } else if let Some(value) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        LabelTest::Equals(label_value(value)?)
    } else if let Some(value) = rest.strip_prefix("!=") {
        LabelTest::NotEquals(label_value(value)?)
    } else if let Some(value) = rest.strip_prefix('>') {
        LabelTest::GreaterThan(integer_value(value)?)
    } else if let Some(value) = rest.strip_prefix('<') {
        LabelTest::LessThan(integer_value(value)?)
    } else if let Some(set) = set_operand(rest, "notin") {
        LabelTest::NotIn(value_set(set)?)
    } else if let Some(set) = set_operand(rest, "in") {
        LabelTest::In(value_set(set)?)
    } else {
        return Err(SelectorError(format!(
            "unable to parse requirement: found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
        )));
    };
    Ok(LabelRequirement { key: key.to_string(), test })
}

/// `in (a,b)` → `(a,b)`, requiring the operator to be a whole word.
fn set_operand<'a>(rest: &'a str, operator: &str) -> Option<&'a str> {
    let after = rest.strip_prefix(operator)?;
    (after.starts_with(|c: char| c.is_whitespace() || c == '(')).then(|| after.trim_start())
}

fn value_set(set: &str) -> Result<Vec<String>, SelectorError> {
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("unable to parse requirement: found '{set}', expected: '('")))?;
    let values = inner.split(',').map(label_value).collect::<Result<Vec<_>, _>>()?;
    if inner.trim().is_empty() {
        return Err(SelectorError("for 'in', 'notin' operators, values set can't be empty".to_string()));
    }
    Ok(values)
}

fn label_value(value: &str) -> Result<String, SelectorError> {
    let value = value.trim();
    let valid_chars = value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let valid_ends = value.is_empty()
        || (value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if !valid_chars || !valid_ends || value.len() > 63 {
        return Err(SelectorError(format!(
            "invalid label value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )));
    }
    Ok(value.to_string())
}

fn integer_value(value: &str) -> Result<i64, SelectorError> {
    let value = value.trim();
    value.parse().map_err(|_| {
        SelectorError(format!(
            "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {value:?}"
        ))
    })
}

/// `[prefix/]name`: a DNS-subdomain prefix and a name of alphanumerics, `-_.`.
fn validate_key(key: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
    });
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(SelectorError(format!("unable to parse requirement: invalid label key {key:?}")))
    }
}

/// The fields a `fieldSelector` may name here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    field: Field,
    value: String,
    negated: bool,
}

/// A parsed `fieldSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub(crate) fn parse(text: &str) -> Result<FieldSelector, SelectorError> {
        let mut requirements = Vec::new();
        if text.is_empty() {
            return Ok(FieldSelector { requirements });
        }
        for part in split_unescaped(text, ',') {
            let (field, value, negated) = split_field_term(&part)
                .ok_or_else(|| SelectorError(format!("invalid selector: '{text}'; can't understand '{part}'")))?;
            let field = match field.as_str() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other => return Err(SelectorError(format!("field label not supported: {other}"))),
            };
            requirements.push(FieldRequirement { field, value, negated });
        }
        Ok(FieldSelector { requirements })
    }

    /// A selector for one name: the GET-with-watch and `/watch/…/{name}` forms.
    pub(crate) fn and_name(mut self, name: &str) -> FieldSelector {
        self.requirements.push(FieldRequirement { field: Field::Name, value: name.to_string(), negated: false });
        self
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|requirement| {
            let pointer = match requirement.field {
                Field::Name => "/metadata/name",
                Field::Namespace => "/metadata/namespace",
            };
            let actual = object.pointer(pointer).and_then(Value::as_str).unwrap_or("");
            (actual == requirement.value) != requirement.negated
        })
    }
}

/// Splits at `separator` where it is not escaped by `\`, un-escaping nothing.
fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for ch in text.chars() {
        if escaped {
            current.push('\\');
            current.push(ch);
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == separator {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(ch);
        }
    }
    if escaped {
        current.push('\\');
    }
    parts.push(current);
    parts
}

/// `field!=value`, `field==value` or `field=value` (value un-escaped).
fn split_field_term(term: &str) -> Option<(String, String, bool)> {
    for (operator, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((field, value)) = term.split_once(operator) {
            if field.is_empty() || field.contains('\\') {
                return None;
            }
            return Some((field.trim().to_string(), unescape_field_value(value)?, negated));
        }
    }
    None
}

fn unescape_field_value(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => out.push(escaped),
                _ => return None,
            }
        } else if ch == '=' || ch == ',' {
            return None;
        } else {
            out.push(ch);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(labels: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "prod", "labels": labels}})
    }

    fn matches(selector: &str, labels: Value) -> bool {
        LabelSelector::parse(selector).unwrap().matches(&object(labels))
    }

    #[test]
    fn label_equality_and_existence() {
        let labels = json!({"app": "web", "tier": "front", "kubernetes.io/service-name": "web"});
        assert!(matches("", labels.clone()));
        assert!(matches("app=web", labels.clone()));
        assert!(matches("app==web", labels.clone()));
        assert!(matches("app = web , tier=front", labels.clone()));
        assert!(!matches("app=api", labels.clone()));
        assert!(matches("app!=api", labels.clone()));
        assert!(matches("missing!=x", labels.clone()), "!= holds when the label is absent");
        assert!(matches("app", labels.clone()));
        assert!(!matches("!app", labels.clone()));
        assert!(matches("!missing", labels.clone()));
        assert!(matches("kubernetes.io/service-name=web", labels.clone()));
        assert!(!matches("app=web,tier=back", labels));
    }

    #[test]
    fn label_sets_and_numbers() {
        let labels = json!({"env": "prod", "replicas": "3"});
        assert!(matches("env in (prod, staging)", labels.clone()));
        assert!(matches("env in(prod)", labels.clone()));
        assert!(!matches("env notin (prod,staging)", labels.clone()));
        assert!(matches("missing notin (a)", labels.clone()), "notin holds when the label is absent");
        assert!(!matches("missing in (a)", labels.clone()));
        assert!(matches("env in (a,prod),replicas>2", labels.clone()));
        assert!(matches("replicas<4", labels.clone()));
        assert!(!matches("replicas>3", labels.clone()));
        assert!(!matches("env>1", labels), "non-numbers never satisfy gt");
    }

    #[test]
    fn label_syntax_errors() {
        for bad in [
            "app=",
            "=web",
            "app=we b",
            "app in prod",
            "app in ()",
            "app in (a",
            "app)",
            "app=web,",
            ",app",
            "app>x",
            "app ~ web",
            "-app",
            "app=-web",
            "Bad/app",
        ] {
            let result = LabelSelector::parse(bad);
            if bad == "app=" {
                // An empty value is a valid label value.
                assert!(result.is_ok(), "{bad}");
            } else {
                assert!(result.is_err(), "{bad} should be rejected, got {result:?}");
            }
        }
    }

    #[test]
    fn field_selectors() {
        let web = object(json!({}));
        let parse = |text: &str| FieldSelector::parse(text).unwrap();
        assert!(parse("").matches(&web));
        assert!(parse("metadata.name=web").matches(&web));
        assert!(parse("metadata.name==web,metadata.namespace=prod").matches(&web));
        assert!(!parse("metadata.name!=web").matches(&web));
        assert!(parse("metadata.namespace!=default").matches(&web));
        assert!(!parse("metadata.name=api").matches(&web));
        assert!(parse("").and_name("web").matches(&web));
        assert!(!parse("").and_name("api").matches(&web));
        assert!(FieldSelector::parse("spec.clusterIP=1").unwrap_err().0.contains("field label not supported"));
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse("metadata.name=a=b").is_err());
        assert_eq!(parse(r"metadata.name=a\,b").requirements[0].value, "a,b");
    }
}
