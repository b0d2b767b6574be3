//! Removing secrets from URIs and statements before they are shown anywhere.

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

/// The URI with every secret query parameter's value, and any `user:password@` password,
/// replaced by `redacted`.
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
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_param(k) || is_secret_param(&percent_decode(k)) => format!("{k}={REDACTED}"),
                _ => kv.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

fn redact_userinfo(base: &str) -> String {
    if let Some(scheme_end) = base.find("://") {
        let rest = &base[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        // The password of well-formed user info; failing that, anything up to a later '@' with
        // a ':' before it (a password holding an unencoded '/').
        let at = authority.rfind('@').or_else(|| rest.rfind('@').filter(|at| rest[..*at].contains(':')));
        if let Some(at) = at {
            if let Some(colon) = rest[..at].find(':') {
                return format!("{}{}:{REDACTED}{}", &base[..scheme_end + 3], &rest[..colon], &rest[at..]);
            }
        }
    }
    base.to_string()
}

/// Decodes `%XX` escapes of a parameter name (invalid ones are kept as they are).
/// Decodes `%XX` escapes (a malformed escape stays as written; invalid UTF-8 is replaced).
pub fn percent_decode(s: &str) -> String {
    decode_escapes(s, false)
}

/// Decodes a query-string value: `%XX` escapes, and `+` as a space.
pub fn percent_decode_query(s: &str) -> String {
    decode_escapes(s, true)
}

fn decode_escapes(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn redacts_secret_params_only() {
        assert_eq!(
            redact_uri("s3://b/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=s3cr3t&AWS_REGION=us-east-1"),
            "s3://b/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=redacted&AWS_REGION=us-east-1"
        );
        assert_eq!(redact_uri("azure://c/p?azure_account_key=abc"), "azure://c/p?azure_account_key=redacted");
        assert_eq!(redact_uri("https://user:pw@host/x"), "https://user:redacted@host/x");
        assert_eq!(redact_uri("nodelocal://1/backups"), "nodelocal://1/backups");
        // Presigned URLs carry their secret in the query string.
        assert_eq!(
            redact_uri(
                "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc123&X-Amz-Expires=60"
            ),
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=redacted&X-Amz-Signature=redacted&X-Amz-Expires=60"
        );
        assert_eq!(
            redact_uri("https://a.blob.core.windows.net/c/b?sv=2022&sig=s3cr3t"),
            "https://a.blob.core.windows.net/c/b?sv=2022&sig=redacted"
        );
        // A password with an unencoded '/' is still hidden; '@' in a path is left alone.
        assert_eq!(redact_uri("https://u:pa/ss@host/x?a=b"), "https://u:redacted@host/x?a=b");
        assert_eq!(redact_uri("s3://bucket/a@b"), "s3://bucket/a@b");
        // Percent-encoded parameter names are secret names too.
        assert_eq!(
            redact_uri("s3://b/p?AWS%5FSECRET%5FACCESS%5FKEY=s3cr3t"),
            "s3://b/p?AWS%5FSECRET%5FACCESS%5FKEY=redacted"
        );
    }
}
