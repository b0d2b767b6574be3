//! Removing secrets from URIs and statements before they are shown anywhere.
//!
//! A URI is shown with every query value replaced by `redacted`, but the few that cannot be a
//! secret ([`shows_query_value`]: `AUTH=implicit`, `AWS_USE_PATH_STYLE=true`, a region name, a
//! `${NAME}` reference); a parameter name that is not name-shaped (it may be a value typed
//! without `=`) is hidden too, and so is the password of `user:password@` (or the whole user
//! info when it has no `:`, a token). Misspelled names (`AWS_SECRET_KEY`), unknown ones,
//! `;` instead of `&`: whatever the spelling, no value is shown (nor one whose `%`-escapes do
//! not decode to UTF-8).

use crate::error::{Error, Result};

/// Query parameters whose values are secrets (compared case-insensitively).
pub const SECRET_PARAMS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_ACCOUNT_KEY",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_SAS_TOKEN",
    "CREDENTIALS",
    "BEARER_TOKEN",
    "ASSUME_ROLE_CREDENTIALS",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "X-Goog-Signature",
    "X-Goog-Credential",
    "sig",
    "PASSWORD",
    "KEY",
    "TOKEN",
    "SECRET",
];

/// The placeholder shown instead of a secret.
pub const REDACTED: &str = "redacted";

/// Whether a query parameter's value is secret.
pub fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// `NAME` when `value` (percent-decoded) is the reference `${NAME}` (`NAME` letters, digits and
/// `_`, not starting with a digit).
pub fn env_reference(value: &str) -> Option<String> {
    let decoded = percent_decode("${NAME} reference", value).ok()?;
    let name = decoded.strip_prefix("${")?.strip_suffix('}')?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| name.to_string())
}

/// Whether the value of query parameter `name` is shown: only values that cannot be a secret
/// (`AUTH` `specified`/`implicit`, `AWS_USE_PATH_STYLE` `true`/`false`, an `AWS_REGION` shaped
/// like one, and a `${NAME}` reference to an environment variable).
pub fn shows_query_value(name: &str, value: &str) -> bool {
    let Ok(value) = percent_decode_query("URI parameter", value) else { return false };
    if env_reference(&value).is_some() {
        return true;
    }
    let one_of = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(&value));
    let Ok(name) = percent_decode("URI parameter name", name) else { return false };
    match name.to_ascii_uppercase().as_str() {
        "AUTH" => one_of(&["specified", "implicit"]),
        "AWS_USE_PATH_STYLE" => one_of(&["true", "false"]),
        "AWS_REGION" => is_region(&value),
        _ => false,
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-3`, `auto`.
fn is_region(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    v == "auto"
        || (v.len() <= 24
            && (3..=4).contains(&parts.len())
            && parts[0].len() == 2
            && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].len() <= 2
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a query parameter name is shown as written (letters, digits, `_ - .`, at most 64).
fn is_name_shaped(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.%".contains(&b))
}

/// The URI as it may be shown: every query value but those [`shows_query_value`] allows
/// replaced by `redacted`, and the password of `user:password@` too (see the module docs).
pub fn redact_uri(uri: &str) -> String {
    let (base, query) = match uri.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (uri, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(q) = query {
        out.push('?');
        let params: Vec<String> = q
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').map_or((kv, None), |(k, v)| (k, Some(v)));
                let plain_name = percent_decode("URI parameter name", k).is_ok_and(|n| !n.contains(['=', ';', '&']));
                let name = if is_name_shaped(k) && plain_name { k } else { HIDDEN_NAME };
                match v {
                    None if name == k
                        && (is_secret_param(k) || SHOWN_FLAGS.iter().any(|f| f.eq_ignore_ascii_case(k))) =>
                    {
                        k.to_string()
                    }
                    // A bare word may be a value whose `=` went missing.
                    None if k.is_empty() => String::new(),
                    None => REDACTED.to_string(),
                    Some(v) if name == k && shows_query_value(k, v) => kv.to_string(),
                    Some(_) => format!("{name}={REDACTED}"),
                }
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// What a parameter name that may hold a value is shown as.
const HIDDEN_NAME: &str = "(name)";

/// Parameter names shown when they come without a value.
const SHOWN_FLAGS: &[&str] = &["AUTH", "AWS_USE_PATH_STYLE", "AWS_REGION", "AWS_ENDPOINT", "COCKROACH_LOCALITY"];

fn redact_userinfo(base: &str) -> String {
    if let Some(scheme_end) = base.find("://") {
        let rest = &base[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        // The password of well-formed user info; failing that, anything up to a later '@' with
        // a ':' before it (a password holding an unencoded '/').
        let at = authority.rfind('@').or_else(|| rest.rfind('@').filter(|at| rest[..*at].contains(':')));
        if let Some(at) = at {
            let userinfo = &rest[..at];
            return match userinfo.find(':') {
                Some(colon) if env_reference(&userinfo[colon + 1..]).is_some() => base.to_string(),
                Some(colon) => format!("{}{}:{REDACTED}{}", &base[..scheme_end + 3], &rest[..colon], &rest[at..]),
                // User info without a password may itself be a token.
                None => format!("{}{REDACTED}{}", &base[..scheme_end + 3], &rest[at..]),
            };
        }
    }
    base.to_string()
}

/// Decodes the `%XX` escapes of one part of a URI (a path segment, a parameter's name or value)
/// with the `percent-encoding` crate; a `%` not followed by two hex digits stays as written.
///
/// `what` names the part (`URI parameter AWS_REGION`, `path segment of 'nodelocal://1/x'`): when the decoded bytes
/// are not UTF-8 the error names it and never shows the value, which may be a secret.
pub fn percent_decode(what: &str, s: &str) -> Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| Error::invalid(what, "a %-escape does not decode to UTF-8 text"))
}

/// [`percent_decode`] of a query-string value: `+` is a space too (an escaped `%2B` stays `+`).
pub fn percent_decode_query(what: &str, s: &str) -> Result<String> {
    percent_decode(what, &s.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn redacts_every_query_value_that_may_be_a_secret() {
        assert_eq!(
            redact_uri("s3://b/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=s3cr3t&AWS_REGION=us-east-1"),
            "s3://b/p?AWS_ACCESS_KEY_ID=redacted&AWS_SECRET_ACCESS_KEY=redacted&AWS_REGION=us-east-1"
        );
        assert_eq!(redact_uri("azure://c/p?azure_account_key=abc"), "azure://c/p?azure_account_key=redacted");
        assert_eq!(redact_uri("https://user:pw@host/x"), "https://user:redacted@host/x");
        assert_eq!(redact_uri("https://t0ken@host/x"), "https://redacted@host/x");
        assert_eq!(redact_uri("https://user:${DAV_PW}@host/x"), "https://user:${DAV_PW}@host/x");
        assert_eq!(redact_uri("nodelocal://1/backups"), "nodelocal://1/backups");
        assert_eq!(
            redact_uri("s3://b?AUTH=implicit&AWS_USE_PATH_STYLE=true&AWS_SECRET_ACCESS_KEY=${KEY}"),
            "s3://b?AUTH=implicit&AWS_USE_PATH_STYLE=true&AWS_SECRET_ACCESS_KEY=${KEY}"
        );
        // Presigned URLs carry their secret in the query string.
        assert_eq!(
            redact_uri(
                "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc123&X-Amz-Expires=60"
            ),
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=redacted&X-Amz-Signature=redacted&X-Amz-Expires=redacted"
        );
        // A password with an unencoded '/' is still hidden; '@' in a path is left alone.
        assert_eq!(redact_uri("https://u:pa/ss@host/x?a=b"), "https://u:redacted@host/x?a=redacted");
        assert_eq!(redact_uri("s3://bucket/a@b"), "s3://bucket/a@b");
    }

    /// Every spelling of a secret found by trying strata as a careless operator would: no value
    /// survives, whatever the parameter's name.
    #[test]
    fn no_spelling_shows_a_value() {
        let secret = "Zq9SECRETvalue";
        let spellings = [
            "AWS_SECRET_ACCESS_KEY={s}",
            "AWS_SECRET_KEY={s}",
            "aws_secret_access_key={s}",
            "AWS%5FSECRET%5FACCESS%5FKEY={s}",
            "AZURE_ACCOUNT_SECRET={s}",
            "AZURE_ACCOUNT_KEY={s}",
            "CREDENTIAL={s}",
            "CREDENTIALS={s}",
            "AWS_SESION_TOKEN={s}",
            "AWS_SESSION_TOKEN={s}",
            "AWS_SECRET_ACCESS_KEY ={s}",
            "AWS_SECRET_ACCESS_KEY= {s}",
            "AWS_SECRET_ACCESS_KEY=={s}",
            "AWS_ACCESS_KEY_ID=AKIA;AWS_SECRET_ACCESS_KEY={s}",
            "AWS_REGION=us-east-1;AWS_SECRET_ACCESS_KEY={s}",
            "AWS_REGION={s}",
            "AUTH={s}",
            "AWS_USE_PATH_STYLE={s}",
            "AWS_ENDPOINT=http://u:{s}@h",
            "COCKROACH_LOCALITY=region%3D{s}",
            "{s}",
            "AWS_SECRET_ACCESS_KEY%3D{s}",
            "x={s}&y",
            "AWS_SECRET_ACCESS_KEY={s}#frag",
        ];
        for spelling in spellings {
            let query = spelling.replace("{s}", secret);
            for uri in [
                format!("s3://bucket/path?{query}"),
                format!("s3://bucket/path?AWS_REGION=us-east-1&{query}"),
                format!("azure://c/p?{query}&AZURE_ACCOUNT_NAME=a"),
            ] {
                let shown = redact_uri(&uri);
                assert!(!shown.contains(secret) && !shown.contains("SECRETvalue"), "{uri} => {shown}");
            }
        }
        for userinfo in ["u:{s}", "{s}", "u:{s}/x", "u:{s}:{s}", "u%3A{s}"] {
            let uri = format!("https://{}@dav.example/p", userinfo.replace("{s}", secret));
            let shown = redact_uri(&uri);
            assert!(!shown.contains(secret), "{uri} => {shown}");
        }
    }

    #[test]
    fn percent_decoding_has_one_behaviour() {
        assert_eq!(percent_decode("p", "a%20b%2fc").unwrap(), "a b/c");
        assert_eq!(percent_decode("p", "100%").unwrap(), "100%");
        assert_eq!(percent_decode("p", "%zz%4").unwrap(), "%zz%4");
        assert_eq!(percent_decode("p", "a+b").unwrap(), "a+b");
        assert_eq!(percent_decode_query("p", "a+b%2Bc").unwrap(), "a b+c");
        // Invalid UTF-8: an error naming the part, never the value (it may be a secret).
        let e = percent_decode_query("URI parameter AWS_SECRET_ACCESS_KEY", "s3cr%ff").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid URI parameter AWS_SECRET_ACCESS_KEY: a %-escape does not decode to UTF-8 text"
        );
        // The redactor hides such a value and such a name.
        assert_eq!(redact_uri("s3://b?AWS_REGION=us%ff"), "s3://b?AWS_REGION=redacted");
        assert_eq!(redact_uri("s3://b?A%ffB=v"), "s3://b?(name)=redacted");
    }
}
