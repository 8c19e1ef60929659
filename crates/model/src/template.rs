//! `{{NAME}}` placeholders in webhook URLs, resolved from an environment's variables
//! (OneSchema's "environment variables in the URL").

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("placeholder `{{{{{name}}}}}` has no value in environment `{environment}`")]
    Unresolved { name: String, environment: String },
    #[error("placeholder `{{{{{0}}}}}` needs an environment, and the event names none")]
    NoEnvironment(String),
    #[error("unclosed `{{{{` in URL template")]
    Unclosed,
    #[error("placeholder name `{0}` may only hold letters, digits and `_`")]
    BadName(String),
    #[error("URL `{0}` is not an absolute http:// or https:// URL")]
    NotHttp(String),
    #[error("URL `{0}` is not an absolute http(s):// or amqp(s):// URL")]
    NotADestination(String),
}

/// Splits a template into literal text and placeholder names.
fn parts(template: &str) -> Result<Vec<Part<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push(Part::Text(&rest[..start]));
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..end].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(TemplateError::BadName(name.to_owned()));
        }
        out.push(Part::Var(name));
        rest = &after[end + 2..];
    }
    out.push(Part::Text(rest));
    Ok(out)
}

enum Part<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// What [`check_url_template`] takes (with at most `MAX_URL_CHARS` characters), as
/// the OpenAPI document states it on webhook URLs (a literal there; a test checks the
/// copies): an http(s) URL with a host (no brackets: an IPv6 host by name), no
/// whitespace or control characters, and `{{NAME}}` placeholders anywhere, or a URL
/// that starts with a placeholder.
pub const URL_TEMPLATE_PATTERN: &str = r"^(?:(?:https?|amqps?)://(?:\{\{[A-Za-z0-9_]+\}\}|(?!\{\{)[^/?#\[\]\s\u0000-\u001f\u007f-\u009f])(?:\{\{[A-Za-z0-9_]+\}\}|(?!\{\{)[^/?#\[\]\s\u0000-\u001f\u007f-\u009f])*(?=[/?#]|$)|\{\{[A-Za-z0-9_]+\}\})(?:\{\{[A-Za-z0-9_]+\}\}|(?!\{\{)[^\s\u0000-\u001f\u007f-\u009f])*$";

/// Checks a template when a webhook is saved: well-formed placeholders, and an
/// http(s) or amqp(s) URL unless the scheme itself comes from a placeholder.
pub fn check_url_template(template: &str) -> Result<(), TemplateError> {
    parts(template)?;
    if template.starts_with("{{") {
        return Ok(());
    }
    let probe = template.replace("{{", "x").replace("}}", "x");
    check_destination_url(&probe)
        .map_err(|_| TemplateError::NotADestination(crate::destination::masked(template)))
}

/// An http(s) URL, or an amqp(s) URL (a broker destination).
fn check_destination_url(url: &str) -> Result<(), ()> {
    match crate::destination::scheme_of(url) {
        Some(crate::destination::Scheme::Amqp) => {
            crate::destination::check_amqp_url("url", url).map_err(|_| ())
        }
        _ => crate::envelope::check_http_url("url", url).map_err(|_| ()),
    }
}

/// A URL taken as it is (no placeholders): it must be an absolute http(s) URL.
pub fn literal_url(url: &str) -> Result<String, TemplateError> {
    if url.contains("{{") {
        return Err(TemplateError::NotHttp(url.to_owned()));
    }
    crate::envelope::check_http_url("url", url)
        .map_err(|_| TemplateError::NotHttp(url.to_owned()))?;
    Ok(url.to_owned())
}

/// Fills every placeholder from `variables`; the result must be an http(s) URL or,
/// for a broker destination, an amqp(s) URL (whose credentials are masked in an
/// error: fill them with [`fill`] apart).
pub fn resolve_url(
    template: &str,
    environment: Option<&str>,
    variables: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    let url = fill(template, environment, variables)?;
    check_destination_url(&url)
        .map_err(|_| TemplateError::NotADestination(crate::destination::masked(&url)))?;
    Ok(url)
}

/// Fills every placeholder of `template` from `variables`, whatever the text is.
pub fn fill(
    template: &str,
    environment: Option<&str>,
    variables: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    let mut url = String::with_capacity(template.len());
    for part in parts(template)? {
        match part {
            Part::Text(t) => url.push_str(t),
            Part::Var(name) => {
                let env =
                    environment.ok_or_else(|| TemplateError::NoEnvironment(name.to_owned()))?;
                let value = variables
                    .get(name)
                    .ok_or_else(|| TemplateError::Unresolved {
                        name: name.to_owned(),
                        environment: env.to_owned(),
                    })?;
                url.push_str(value);
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_holds_no_brackets() {
        assert!(check_url_template("http://a/[x]?q=[1]").is_ok());
        for bad in [
            "http://[a",
            "http://a[b/",
            "http://]/",
            "http://[::1]:8080/",
            "http://[]/",
        ] {
            assert!(check_url_template(bad).is_err(), "{bad}");
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn resolves_from_the_environment() {
        let v = vars(&[("HOST", "api.acme.test"), ("TOKEN", "t1")]);
        assert_eq!(
            resolve_url(
                "https://{{HOST}}/hooks?t={{ TOKEN }}",
                Some("Production"),
                &v
            )
            .unwrap(),
            "https://api.acme.test/hooks?t=t1"
        );
        assert_eq!(
            resolve_url("https://plain.test/x", None, &BTreeMap::new()).unwrap(),
            "https://plain.test/x"
        );
    }

    #[test]
    fn unresolved_and_malformed_are_clear() {
        let err = resolve_url("https://{{HOST}}/x", Some("Sandbox"), &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "placeholder `{{HOST}}` has no value in environment `Sandbox`"
        );
        assert!(matches!(
            resolve_url("https://{{HOST}}/x", None, &BTreeMap::new()),
            Err(TemplateError::NoEnvironment(_))
        ));
        assert_eq!(
            check_url_template("https://{{HOST/x"),
            Err(TemplateError::Unclosed)
        );
        assert!(check_url_template("https://{{a-b}}/x").is_err());
        assert!(check_url_template("ftp://x/y").is_err());
        assert!(check_url_template("{{BASE_URL}}/hooks").is_ok());
        let v = vars(&[("BASE_URL", "file:///etc/passwd")]);
        assert!(matches!(
            resolve_url("{{BASE_URL}}", Some("P"), &v),
            Err(TemplateError::NotADestination(_))
        ));
        assert!(check_url_template("amqp://{{HOST}}/vh").is_ok());
        let v = vars(&[("TARGET", "amqps://u:secret@b.test/vh")]);
        assert_eq!(
            resolve_url("{{TARGET}}", Some("P"), &v).unwrap(),
            "amqps://u:secret@b.test/vh"
        );
        let v = vars(&[("TARGET", "amqps://u:secret@/vh")]);
        let err = resolve_url("{{TARGET}}", Some("P"), &v).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
